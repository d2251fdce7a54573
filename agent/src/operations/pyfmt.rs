//! Values written as Python writes them ([`redpepper_core::codec::python`]): RedPepper's
//! output texts embed Python's `str()` and `repr()` of what the manager sent.

pub(crate) use redpepper_core::codec::python::{
    float_repr as float, repr, str_of, str_repr as repr_str, truthy, type_name,
};
