"""CPU acceleration: each convolution with its ReLU as one oneDNN primitive for inference of any
network (`fused.fuse_conv_relu`, used by the torch engine); Winograd F(4x4,3x3) convolutions in fp32 for the U-Net, for inference
(`winograd.WinogradUNet`, used by the Predictor's winograd engine) and training
(`training.use_for_training`), with native transforms in `csrc/winograd.cpp` that `kernels` builds
on first use and calls through ctypes. Nothing here is imported, built or compiled until used.
"""
