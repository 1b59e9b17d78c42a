"""The Keras requirement is bounded above, and the Keras under test lies within it."""

import importlib.metadata

import keras
from packaging.requirements import Requirement


def keras_requirement() -> Requirement:
    [requirement] = [
        Requirement(line) for line in importlib.metadata.requires("faconvlstm")
        if Requirement(line).name == "keras"
    ]
    return requirement


def test_the_keras_requirement_has_an_upper_bound_that_the_tested_keras_meets():
    requirement = keras_requirement()
    assert any(spec.operator in ("<", "<=", "~=", "==") for spec in requirement.specifier)
    assert requirement.specifier.contains(keras.__version__)
