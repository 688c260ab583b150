"""Class tables: a class named by name or by id (`ClassTable.class_id`), as --paste and class-map files
name them, and a class-map file's error for a class its table does not have."""
import numpy as np
import pytest

from roadseg.classes import class_table, generic_table, load_class_map
from roadseg.errors import InputError


def test_class_id_takes_names_ints_and_digit_strings_of_the_table_only():
    camvid = class_table("camvid")
    assert camvid.class_id("Pole") == 2 and camvid.class_id(2) == 2 and camvid.class_id("2") == 2
    assert camvid.class_id(camvid.num_classes - 1) == camvid.num_classes - 1
    for missing in ("Lamppost", camvid.num_classes, str(camvid.num_classes), -1, "-1", True, 2.0, None):
        assert camvid.class_id(missing) is None
    assert generic_table(0).class_id(0) is None


def test_a_class_map_file_maps_names_and_ids_and_names_the_missing_class(tmp_path):
    carla, camvid = class_table("carla"), class_table("camvid")
    path = tmp_path / "map.yaml"
    path.write_text("Vehicles: Car\n5: '2'\nRoad: 3\n")
    lut, ignore = load_class_map(str(path), carla, camvid)
    assert ignore == camvid.ignore_index
    assert lut[carla.class_id("Vehicles")] == camvid.class_id("Car") and lut[5] == 2
    assert lut[carla.class_id("Road")] == 3
    assert np.count_nonzero(lut != ignore) == 3
    path.write_text("Vehicles: Lorry\n")
    with pytest.raises(InputError, match="names target class 'Lorry'.*one of Sky, Building"):
        load_class_map(str(path), carla, camvid)
