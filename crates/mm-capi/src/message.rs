//! `mm_message`: a Message of ordered, named, typed fields — building, reading, encoding and
//! decoding.
//!
//! Ownership: `mm_message_new`, `mm_message_clone`, `mm_message_decode` and the nested-message
//! getters return a message the caller owns and frees with `mm_message_free`. Strings and blobs
//! read from a message point into it: they stay valid until the message is modified or freed.
//! A message is not synchronised: use it from one thread at a time (reading from several at once
//! is fine).

use std::ffi::c_char;

use bytes::Bytes;
use messaging_mesh::{Field, FieldType, FieldValue, Message, Text};

use crate::args;
use crate::handle::{self, Handle};
use crate::status::{Failure, MmStatus, ffi, ffi_void};

/// A Message (opaque; `mm_message` in C).
#[repr(C)]
pub struct MmMessage {
    tag: u64,
    /// The message.
    pub message: Message,
}

// SAFETY: `#[repr(C)]` with the u64 tag first.
unsafe impl Handle for MmMessage {
    const TAG: u64 = 0x4d4d_5f4d_4553_5347;
    const NAME: &'static str = "mm_message";
    fn tag_mut(&mut self) -> &mut u64 {
        &mut self.tag
    }
}

impl MmMessage {
    /// Wraps a message.
    pub fn new(message: Message) -> MmMessage {
        MmMessage {
            tag: Self::TAG,
            message,
        }
    }
}

/// The type of a field. The values are the wire codes (SPEC §4); `MM_FIELD_TYPE_NOT_SET` (0) is
/// never the type of a field in a message.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmFieldType {
    /// No value.
    NotSet = 0,
    /// UTF-8 text (bytes kept as received when they are not valid UTF-8).
    String = 1,
    /// int32_t.
    SignedInt32 = 2,
    /// uint32_t.
    UnsignedInt32 = 3,
    /// int64_t.
    SignedInt64 = 4,
    /// uint64_t.
    UnsignedInt64 = 5,
    /// double.
    Double = 6,
    /// A nested message.
    Message = 7,
    /// bool.
    Bool = 8,
    /// Opaque bytes.
    Blob = 9,
}

impl From<FieldType> for MmFieldType {
    fn from(field_type: FieldType) -> MmFieldType {
        match field_type {
            FieldType::String => MmFieldType::String,
            FieldType::I32 => MmFieldType::SignedInt32,
            FieldType::U32 => MmFieldType::UnsignedInt32,
            FieldType::I64 => MmFieldType::SignedInt64,
            FieldType::U64 => MmFieldType::UnsignedInt64,
            FieldType::F64 => MmFieldType::Double,
            FieldType::Message => MmFieldType::Message,
            FieldType::Bool => MmFieldType::Bool,
            FieldType::Blob => MmFieldType::Blob,
        }
    }
}

/// One field of a message, as read by `mm_message_field_at`. Pointers point into the message
/// and stay valid until it is modified or freed. Only the member for `type` is set:
/// `int_value` for SIGNED_INT32/64, `uint_value` for UNSIGNED_INT32/64, `double_value`,
/// `bool_value`, and `data`/`data_len` for STRING and BLOB. A nested MESSAGE is read with
/// `mm_message_get_message_at`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MmFieldView {
    /// The name's bytes (not NUL-terminated).
    pub name: *const c_char,
    /// The name's length in bytes.
    pub name_len: usize,
    /// The field's type.
    pub field_type: MmFieldType,
    /// The value of a SIGNED_INT32 or SIGNED_INT64 field.
    pub int_value: i64,
    /// The value of an UNSIGNED_INT32 or UNSIGNED_INT64 field.
    pub uint_value: u64,
    /// The value of a DOUBLE field.
    pub double_value: f64,
    /// The value of a BOOL field.
    pub bool_value: bool,
    /// The bytes of a STRING or BLOB field (not NUL-terminated).
    pub data: *const u8,
    /// Their length.
    pub data_len: usize,
}

impl MmFieldView {
    fn of(field: &Field) -> MmFieldView {
        let mut view = MmFieldView {
            name: field.name().as_bytes().as_ptr().cast::<c_char>(),
            name_len: field.name().len(),
            field_type: field.field_type().into(),
            int_value: 0,
            uint_value: 0,
            double_value: 0.0,
            bool_value: false,
            data: std::ptr::null(),
            data_len: 0,
        };
        match field.value() {
            FieldValue::String(text) => {
                view.data = text.as_bytes().as_ptr();
                view.data_len = text.len();
            }
            FieldValue::Blob(blob) => {
                view.data = blob.as_ptr();
                view.data_len = blob.len();
            }
            FieldValue::I32(value) => view.int_value = i64::from(*value),
            FieldValue::I64(value) => view.int_value = *value,
            FieldValue::U32(value) => view.uint_value = u64::from(*value),
            FieldValue::U64(value) => view.uint_value = *value,
            FieldValue::F64(value) => view.double_value = *value,
            FieldValue::Bool(value) => view.bool_value = *value,
            FieldValue::Message(_) => {}
        }
        view
    }
}

/// The message behind a handle.
///
/// # Safety
///
/// As for [`handle::borrow`].
unsafe fn message<'a>(ptr: *const MmMessage) -> Result<&'a Message, Failure> {
    // SAFETY: forwarded contract.
    Ok(unsafe { &handle::borrow(ptr)?.message })
}

/// The message behind a handle, mutably.
///
/// # Safety
///
/// As for [`handle::borrow_mut`].
unsafe fn message_mut<'a>(ptr: *mut MmMessage) -> Result<&'a mut Message, Failure> {
    // SAFETY: forwarded contract.
    Ok(unsafe { &mut handle::borrow_mut(ptr)?.message })
}

/// A field name argument, which must be UTF-8 to be looked up.
///
/// # Safety
///
/// As for [`args::text`].
unsafe fn name_arg<'a>(name: *const c_char, name_len: usize) -> Result<&'a str, Failure> {
    // SAFETY: forwarded contract.
    unsafe { args::text(name, name_len, "the field name") }
}

/// The first field named `name`.
fn field<'a>(message: &'a Message, name: &str) -> Result<&'a Field, Failure> {
    message
        .field(name)
        .ok_or_else(|| Failure::new(MmStatus::FieldNotFound, format!("no field named `{name}`")))
}

fn wrong_type(field: &Field, expected: FieldType) -> Failure {
    Failure::new(
        MmStatus::WrongType,
        format!(
            "field `{}` is {}, not {}",
            field.name(),
            field.field_type(),
            expected
        ),
    )
}

/// The field at `index`.
fn field_at(message: &Message, index: usize) -> Result<&Field, Failure> {
    message.field_at(index).ok_or_else(|| {
        Failure::new(
            MmStatus::FieldNotFound,
            format!(
                "no field at index {index} (the message has {})",
                message.len()
            ),
        )
    })
}

/// A new, empty message, owned by the caller (free with `mm_message_free`). Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn mm_message_new() -> *mut MmMessage {
    handle::into_raw(MmMessage::new(Message::new()))
}

/// Frees a message (NULL is ignored).
///
/// # Safety
///
/// `message` is NULL or a live message handle, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_free(message: *mut MmMessage) {
    // SAFETY: forwarded contract.
    ffi_void(|| unsafe { handle::free(message) });
}

/// A deep copy of `message` into `*out`, owned by the caller.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_clone(
    message: *const MmMessage,
    out: *mut *mut MmMessage,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let copy = unsafe { self::message(message)? }.clone();
        // SAFETY: forwarded contract.
        unsafe { args::write(out, handle::into_raw(MmMessage::new(copy)), "out") }
    })
}

/// Removes every field.
///
/// # Safety
///
/// `message` is a live message handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_clear(message: *mut MmMessage) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        unsafe { message_mut(message)? }.clear();
        Ok(())
    })
}

/// The number of fields, duplicates included.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_count(message: *const MmMessage, out: *mut usize) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let count = unsafe { self::message(message)? }.len();
        // SAFETY: forwarded contract.
        unsafe { args::write(out, count, "out") }
    })
}

/// Appends a STRING field. The value is bytes (meant to be UTF-8; not checked).
///
/// # Safety
///
/// `message` is a live message handle; strings as described in the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_add_string(
    message: *mut MmMessage,
    name: *const c_char,
    name_len: usize,
    value: *const c_char,
    value_len: usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (message, name, value) = unsafe {
            (
                message_mut(message)?,
                args::bytes(name, name_len, "the field name")?,
                args::bytes(value, value_len, "the value")?,
            )
        };
        message.push(
            Text::from_bytes(Bytes::copy_from_slice(name)),
            FieldValue::String(Text::from_bytes(Bytes::copy_from_slice(value))),
        );
        Ok(())
    })
}

/// Appends a BLOB field (the bytes are copied).
///
/// # Safety
///
/// `message` is a live message handle; `data` is NULL (with `len` 0) or readable for `len`
/// bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_add_blob(
    message: *mut MmMessage,
    name: *const c_char,
    name_len: usize,
    data: *const u8,
    len: usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (message, name, data) = unsafe {
            (
                message_mut(message)?,
                args::bytes(name, name_len, "the field name")?,
                args::data(data, len, "the blob")?,
            )
        };
        message.push(
            Text::from_bytes(Bytes::copy_from_slice(name)),
            FieldValue::Blob(Bytes::copy_from_slice(data)),
        );
        Ok(())
    })
}

/// Appends a nested MESSAGE field holding a copy of `nested` (which stays owned by the caller).
///
/// # Safety
///
/// `message` and `nested` are live message handles (they may be the same).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_add_message(
    message: *mut MmMessage,
    name: *const c_char,
    name_len: usize,
    nested: *const MmMessage,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract; the copy is taken before the mutable borrow.
        let copy = unsafe { self::message(nested)? }.clone();
        // SAFETY: forwarded contract.
        let (message, name) = unsafe {
            (
                message_mut(message)?,
                args::bytes(name, name_len, "the field name")?,
            )
        };
        message.push(
            Text::from_bytes(Bytes::copy_from_slice(name)),
            FieldValue::Message(copy),
        );
        Ok(())
    })
}

/// Appends a field with a copy of `name`.
///
/// # Safety
///
/// `message` is a live message handle; the name as described in the header.
unsafe fn add_value(
    message: *mut MmMessage,
    name: *const c_char,
    name_len: usize,
    value: FieldValue,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (message, name) = unsafe {
            (
                message_mut(message)?,
                args::bytes(name, name_len, "the field name")?,
            )
        };
        message.push(Text::from_bytes(Bytes::copy_from_slice(name)), value);
        Ok(())
    })
}

/// Reads the first field named `name` into `out` when `extract` accepts its value.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
unsafe fn get_value<T>(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut T,
    expected: FieldType,
    extract: impl Fn(&FieldValue) -> Option<T>,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (message, name) = unsafe { (self::message(message)?, name_arg(name, name_len)?) };
        let field = field(message, name)?;
        let value = extract(field.value()).ok_or_else(|| wrong_type(field, expected))?;
        // SAFETY: forwarded contract.
        unsafe { args::write(out, value, "out") }
    })
}

/// Appends a SIGNED_INT32 field.
///
/// # Safety
///
/// `message` is a live message handle; the name as described in the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_add_i32(
    message: *mut MmMessage,
    name: *const c_char,
    name_len: usize,
    value: i32,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe { add_value(message, name, name_len, FieldValue::I32(value)) }
}

/// Reads the first field named `name`, which must be a SIGNED_INT32 field (no conversion):
/// `MM_STATUS_FIELD_NOT_FOUND` or `MM_STATUS_WRONG_TYPE` otherwise.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_get_i32(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut i32,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe {
        get_value(
            message,
            name,
            name_len,
            out,
            FieldType::I32,
            |value| match value {
                FieldValue::I32(value) => Some(*value),
                _ => None,
            },
        )
    }
}

/// Appends a UNSIGNED_INT32 field.
///
/// # Safety
///
/// `message` is a live message handle; the name as described in the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_add_u32(
    message: *mut MmMessage,
    name: *const c_char,
    name_len: usize,
    value: u32,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe { add_value(message, name, name_len, FieldValue::U32(value)) }
}

/// Reads the first field named `name`, which must be a UNSIGNED_INT32 field (no conversion):
/// `MM_STATUS_FIELD_NOT_FOUND` or `MM_STATUS_WRONG_TYPE` otherwise.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_get_u32(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut u32,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe {
        get_value(
            message,
            name,
            name_len,
            out,
            FieldType::U32,
            |value| match value {
                FieldValue::U32(value) => Some(*value),
                _ => None,
            },
        )
    }
}

/// Appends a SIGNED_INT64 field.
///
/// # Safety
///
/// `message` is a live message handle; the name as described in the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_add_i64(
    message: *mut MmMessage,
    name: *const c_char,
    name_len: usize,
    value: i64,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe { add_value(message, name, name_len, FieldValue::I64(value)) }
}

/// Reads the first field named `name`, which must be a SIGNED_INT64 field (no conversion):
/// `MM_STATUS_FIELD_NOT_FOUND` or `MM_STATUS_WRONG_TYPE` otherwise.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_get_i64(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut i64,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe {
        get_value(
            message,
            name,
            name_len,
            out,
            FieldType::I64,
            |value| match value {
                FieldValue::I64(value) => Some(*value),
                _ => None,
            },
        )
    }
}

/// Appends a UNSIGNED_INT64 field.
///
/// # Safety
///
/// `message` is a live message handle; the name as described in the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_add_u64(
    message: *mut MmMessage,
    name: *const c_char,
    name_len: usize,
    value: u64,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe { add_value(message, name, name_len, FieldValue::U64(value)) }
}

/// Reads the first field named `name`, which must be a UNSIGNED_INT64 field (no conversion):
/// `MM_STATUS_FIELD_NOT_FOUND` or `MM_STATUS_WRONG_TYPE` otherwise.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_get_u64(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut u64,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe {
        get_value(
            message,
            name,
            name_len,
            out,
            FieldType::U64,
            |value| match value {
                FieldValue::U64(value) => Some(*value),
                _ => None,
            },
        )
    }
}

/// Appends a DOUBLE field.
///
/// # Safety
///
/// `message` is a live message handle; the name as described in the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_add_f64(
    message: *mut MmMessage,
    name: *const c_char,
    name_len: usize,
    value: f64,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe { add_value(message, name, name_len, FieldValue::F64(value)) }
}

/// Reads the first field named `name`, which must be a DOUBLE field (no conversion):
/// `MM_STATUS_FIELD_NOT_FOUND` or `MM_STATUS_WRONG_TYPE` otherwise.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_get_f64(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut f64,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe {
        get_value(
            message,
            name,
            name_len,
            out,
            FieldType::F64,
            |value| match value {
                FieldValue::F64(value) => Some(*value),
                _ => None,
            },
        )
    }
}

/// Appends a BOOL field.
///
/// # Safety
///
/// `message` is a live message handle; the name as described in the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_add_bool(
    message: *mut MmMessage,
    name: *const c_char,
    name_len: usize,
    value: bool,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe { add_value(message, name, name_len, FieldValue::Bool(value)) }
}

/// Reads the first field named `name`, which must be a BOOL field (no conversion):
/// `MM_STATUS_FIELD_NOT_FOUND` or `MM_STATUS_WRONG_TYPE` otherwise.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_get_bool(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut bool,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe {
        get_value(
            message,
            name,
            name_len,
            out,
            FieldType::Bool,
            |value| match value {
                FieldValue::Bool(value) => Some(*value),
                _ => None,
            },
        )
    }
}

/// Reads the first field named `name`, which must be a STRING: `*out`/`*out_len` get its bytes
/// (not NUL-terminated, valid until the message is modified or freed).
///
/// # Safety
///
/// `message` is a live message handle; the out-parameters are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_get_string(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (message, name) = unsafe { (self::message(message)?, name_arg(name, name_len)?) };
        let field = field(message, name)?;
        match field.value() {
            // SAFETY: forwarded contract.
            FieldValue::String(text) => unsafe { args::write_slice(out, out_len, text.as_bytes()) },
            _ => Err(wrong_type(field, FieldType::String)),
        }
    })
}

/// Reads the first field named `name`, which must be a BLOB: `*out`/`*out_len` get its bytes
/// (valid until the message is modified or freed).
///
/// # Safety
///
/// `message` is a live message handle; the out-parameters are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_get_blob(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut *const u8,
    out_len: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (message, name) = unsafe { (self::message(message)?, name_arg(name, name_len)?) };
        let field = field(message, name)?;
        match field.value() {
            // SAFETY: forwarded contract.
            FieldValue::Blob(blob) => unsafe {
                args::write(out, blob.as_ptr(), "out")?;
                args::write(out_len, blob.len(), "out_len")
            },
            _ => Err(wrong_type(field, FieldType::Blob)),
        }
    })
}

/// Copies the first field named `name`, which must be a nested MESSAGE, into a new message owned
/// by the caller.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_get_message(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut *mut MmMessage,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (message, name) = unsafe { (self::message(message)?, name_arg(name, name_len)?) };
        let field = field(message, name)?;
        match field.value() {
            FieldValue::Message(nested) => {
                let copy = handle::into_raw(MmMessage::new(nested.clone()));
                // SAFETY: forwarded contract.
                unsafe { args::write(out, copy, "out") }
            }
            _ => Err(wrong_type(field, FieldType::Message)),
        }
    })
}

/// The index of the first field named `name` (`MM_STATUS_FIELD_NOT_FOUND` if none).
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_find(
    message: *const MmMessage,
    name: *const c_char,
    name_len: usize,
    out: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (message, name) = unsafe { (self::message(message)?, name_arg(name, name_len)?) };
        let index = message
            .iter()
            .position(|field| field.name() == name)
            .ok_or_else(|| {
                Failure::new(MmStatus::FieldNotFound, format!("no field named `{name}`"))
            })?;
        // SAFETY: forwarded contract.
        unsafe { args::write(out, index, "out") }
    })
}

/// The field at `index` (wire order, from 0) in `*out`.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_field_at(
    message: *const MmMessage,
    index: usize,
    out: *mut MmFieldView,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let field = field_at(unsafe { self::message(message)? }, index)?;
        // SAFETY: forwarded contract.
        unsafe { args::write(out, MmFieldView::of(field), "out") }
    })
}

/// Copies the nested MESSAGE at `index` into a new message owned by the caller.
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_get_message_at(
    message: *const MmMessage,
    index: usize,
    out: *mut *mut MmMessage,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let field = field_at(unsafe { self::message(message)? }, index)?;
        match field.value() {
            FieldValue::Message(nested) => {
                let copy = handle::into_raw(MmMessage::new(nested.clone()));
                // SAFETY: forwarded contract.
                unsafe { args::write(out, copy, "out") }
            }
            _ => Err(wrong_type(field, FieldType::Message)),
        }
    })
}

/// The size in bytes of the encoded message (field count and fields, SPEC §4).
///
/// # Safety
///
/// `message` is a live message handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_encoded_size(
    message: *const MmMessage,
    out: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let size = unsafe { self::message(message)? }
            .encoded_len()
            .map_err(|error| Failure::new(MmStatus::Encode, error.to_string()))?;
        // SAFETY: forwarded contract.
        unsafe { args::write(out, size, "out") }
    })
}

/// Encodes the message (field count and fields, no length prefix) into `(buf, cap)`; `*len`
/// gets the encoded size. `MM_STATUS_BUFFER_TOO_SMALL` (nothing written) when it does not fit.
///
/// # Safety
///
/// `message` is a live message handle; `buf` is writable for `cap` bytes; `len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_encode(
    message: *const MmMessage,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let message = unsafe { self::message(message)? };
        let mut out = Vec::new();
        message
            .encode(&mut out)
            .map_err(|error| Failure::new(MmStatus::Encode, error.to_string()))?;
        // SAFETY: forwarded contract.
        unsafe { args::copy_out(buf, cap, len, &out) }
    })
}

/// Decodes a message (field count and fields, as `mm_message_encode` writes) from `len` bytes;
/// bytes after the message are ignored. The bytes are copied: the new message, owned by the
/// caller, does not point into them. `MM_STATUS_DECODE` for bytes that are not a message
/// (truncated, unknown type, nested deeper than 64 levels, …).
///
/// # Safety
///
/// `bytes` is readable for `len` bytes; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_decode(
    bytes: *const u8,
    len: usize,
    out: *mut *mut MmMessage,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let input = unsafe { args::data(bytes, len, "the bytes")? };
        let message = Message::decode_from_slice(input)
            .map_err(|error| Failure::new(MmStatus::Decode, error.to_string()))?;
        // SAFETY: forwarded contract.
        unsafe { args::write(out, handle::into_raw(MmMessage::new(message)), "out") }
    })
}

/// The message as text, e.g. `{sym="IBM" px=123.4}`, copied into `(buf, cap)` with a NUL when
/// there is room; `*len` gets the length (without the NUL). `MM_STATUS_BUFFER_TOO_SMALL` when it
/// does not fit.
///
/// # Safety
///
/// `message` is a live message handle; `buf` is writable for `cap` bytes; `len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_to_string(
    message: *const MmMessage,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let text = unsafe { self::message(message)? }.to_string();
        // SAFETY: forwarded contract.
        unsafe { args::copy_out(buf.cast::<u8>(), cap, len, text.as_bytes()) }
    })
}

/// Whether two messages have the same fields in the same order (doubles compared by bit
/// pattern: exactly when they encode to the same bytes).
///
/// # Safety
///
/// `a` and `b` are live message handles; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_message_equal(
    a: *const MmMessage,
    b: *const MmMessage,
    out: *mut bool,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let equal = unsafe { message(a)? == message(b)? };
        // SAFETY: forwarded contract.
        unsafe { args::write(out, equal, "out") }
    })
}
