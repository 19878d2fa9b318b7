"""Scale overrides (``--set FIELD=VALUE``, papermill strings) are read as the field's type."""

from __future__ import annotations

import pytest

from flatness.errors import FlatnessError
from flatness.scales import ModelSpec, get_scale, scale_from_label, scale_label


@pytest.mark.parametrize(("field", "text", "expected"), [
    ("epochs", "40", 40),
    ("lr", "0.1", 0.1),
    ("eps", "4/255", 4 / 255),
    ("seeds", "3,4", (3, 4)),
    ("decay_epochs", "", ()),
    ("train_subset", "all", None),
    ("target_train_subset", "None", None),
    ("robust_dataset_size", "300", 300),
    ("surrogate", "vgg19_bn@0.5", ModelSpec("vgg19_bn", 0.5)),
    ("targets", "resnet18,densenet121@0.5:2",
     (ModelSpec("resnet18"), ModelSpec("densenet121", 0.5, 2))),
])
def test_a_string_override_is_read_as_the_fields_type(field, text, expected) -> None:
    assert getattr(get_scale("cpu", **{field: text}), field) == expected


def test_the_element_type_of_a_list_comes_from_the_field_not_its_value() -> None:
    """An empty target zoo must still read model specs, an empty seed list integers."""
    empty = get_scale("cpu", targets="", seeds="")
    assert empty.targets == () and empty.seeds == ()
    again = empty.replace(targets="resnet18@0.25", seeds="7")
    assert again.targets == (ModelSpec("resnet18", 0.25),) and again.seeds == (7,)


@pytest.mark.parametrize(("field", "text", "message"), [
    ("epochs", "none", "scale field epochs: cannot read 'none'"),  # not optional
    ("seeds", "a,b", "scale field seeds: cannot read 'a,b'"),
    ("eps", "4/0", "scale field eps: cannot read"),
    ("epoch", "3", "unknown scale field 'epoch'"),
])
def test_an_unreadable_override_is_a_clear_error(field, text, message) -> None:
    with pytest.raises(FlatnessError, match=message):
        get_scale("cpu", **{field: text})


def test_a_label_reads_back_to_its_scale() -> None:
    scale = get_scale("cpu", epochs="40", targets="resnet18@0.25", train_subset="all")
    assert scale_from_label(scale_label(scale)) == scale
