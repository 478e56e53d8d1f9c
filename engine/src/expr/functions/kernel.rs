//! Kernels: a function's row form and column form, and the adapters that
//! build both from one typed scalar function.
//!
//! Owns [`Kernel`] and the adapters (`f64 -> f64`, `&str -> String`,
//! timestamp to number, ...) whose row form reads `Value`s and whose column
//! form loops over the typed Arrow buffers with the same scalar function, so
//! the two agree by construction. It must not hold any function's semantics.
//!
//! A kernel may also have a *direct* row form: given where each argument of
//! a call comes from (a column of the row, a literal, or an expression
//! evaluated on the row, known when the call is bound), it builds a closure
//! that reads the row itself. The continuous
//! evaluator then makes one call per function and event, with no argument
//! list to build; the adapters build it from the same scalar function as
//! the other two forms.

use std::sync::Arc;

use smallvec::SmallVec;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, PrimitiveArray, StringArray, StringBuilder,
};
use arrow::datatypes::{
    ArrowPrimitiveType, Date32Type, Float64Type, Int64Type, TimestampMicrosecondType,
};

use crate::error::{EngineError, Result};
use crate::schema::arrow::{build_array, value_at};
use crate::schema::{DataType, Value};

type RowFn = dyn Fn(&[&Value]) -> Value + Send + Sync;
type ColumnFn = dyn Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync;

/// A row form specialised to its call's arguments: reads the row itself.
pub(crate) type DirectFn = dyn Fn(&[Value]) -> Value + Send + Sync;
type SpecializeFn = dyn Fn(&[Arg]) -> Option<Direct> + Send + Sync;

/// A direct form, shared by the copies of a bound tree.
///
/// The closure is boxed inside the shared pointer: the box sits at a fixed
/// place in the shared allocation, so a call loads the closure and its
/// function and calls, where a closure stored in the shared allocation
/// itself is found by arithmetic on its alignment at every call.
#[derive(Clone)]
pub(crate) struct Direct(Arc<Box<DirectFn>>);

impl Direct {
    /// The direct form `f`.
    pub(crate) fn new(f: impl Fn(&[Value]) -> Value + Send + Sync + 'static) -> Direct {
        Direct(Arc::new(Box::new(f)))
    }

    /// The form's value for `row`.
    #[inline(always)]
    pub(crate) fn call(&self, row: &[Value]) -> Value {
        (self.0)(row)
    }
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Direct")
    }
}

/// Where one argument of a call comes from, known at bind time: a column
/// of the input row, a literal, or an expression evaluated on the row.
#[derive(Clone)]
pub(crate) enum Arg {
    /// The row's value at this index.
    Column(usize),
    /// A constant.
    Literal(Value),
    /// Evaluated on each row (a cast, another call).
    Computed(Direct),
}

impl Arg {
    /// The argument's value for `row`, when it is a column or a literal.
    #[inline(always)]
    pub(crate) fn get<'a>(&'a self, row: &'a [Value]) -> Option<&'a Value> {
        match self {
            Arg::Column(i) => Some(&row[*i]),
            Arg::Literal(v) => Some(v),
            Arg::Computed(_) => None,
        }
    }
}

/// A literal of a direct form, handed out for each row.
///
/// A literal that owns nothing on the heap (a number, a boolean, a string
/// short enough to live in the value) is handed out as a copy of its bits,
/// with no match on its type; any other is cloned.
#[derive(Clone, Debug)]
pub(crate) struct Lit {
    value: Value,
    plain: bool,
}

impl Lit {
    /// The literal `value`.
    pub(crate) fn new(value: Value) -> Lit {
        let plain = match &value {
            Value::Utf8(s) => !s.is_heap_allocated(),
            Value::List(_) => false,
            _ => true,
        };
        Lit { value, plain }
    }

    /// A copy of the literal.
    #[inline(always)]
    pub(crate) fn get(&self) -> Value {
        if self.plain {
            // SAFETY: a plain value owns no heap memory (checked in `new`:
            // not a list, not a string kept on the heap), so its bits are a
            // whole, independent copy of it, and dropping that copy or the
            // original frees nothing the other uses. This is what the
            // string's own `Clone` does for a string held inline.
            unsafe { std::ptr::read(&self.value) }
        } else {
            self.value.clone()
        }
    }
}

/// A function's two evaluators, and optionally the builder of its direct
/// row form. Arguments arrive cast to the types the type rule asked for; a
/// null argument is `Value::Null` in the row form and a null slot of the
/// asked type in the column form.
#[derive(Clone)]
pub(crate) struct Kernel {
    row: Arc<RowFn>,
    column: Arc<ColumnFn>,
    direct: Option<Arc<SpecializeFn>>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kernel")
    }
}

/// An Arrow error as an evaluation error.
pub(crate) fn arrow_err(e: arrow::error::ArrowError) -> EngineError {
    EngineError::Eval(e.to_string())
}

impl Kernel {
    /// A kernel from its two forms.
    pub(crate) fn new(
        row: impl Fn(&[&Value]) -> Value + Send + Sync + 'static,
        column: impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync + 'static,
    ) -> Kernel {
        Kernel {
            row: Arc::new(row),
            column: Arc::new(column),
            direct: None,
        }
    }

    /// A kernel of one argument (any further arguments are read at bind
    /// time: patterns) whose row form is `eval` of that argument, with a
    /// direct form for a column or a computed argument built from the same
    /// `eval`.
    pub(crate) fn unary<E>(
        eval: E,
        column: impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync + 'static,
    ) -> Kernel
    where
        E: Fn(&Value) -> Value + Send + Sync + 'static,
    {
        let eval = Arc::new(eval);
        let on_row = eval.clone();
        Kernel::new(move |a: &[&Value]| on_row(a[0]), column).with_direct(move |from: &[Arg]| {
            match from.first() {
                Some(Arg::Column(i)) => {
                    let (eval, i) = (eval.clone(), *i);
                    Some(Direct::new(move |row: &[Value]| eval(&row[i])))
                }
                Some(Arg::Computed(arg)) => {
                    let (eval, arg) = (eval.clone(), arg.clone());
                    Some(Direct::new(move |row: &[Value]| eval(&arg.call(row))))
                }
                _ => None,
            }
        })
    }

    /// This kernel with a direct form: `specialize` gets where each
    /// argument comes from and returns a closure reading the row, or
    /// `None` where the row form should be used. The direct form must
    /// give what the row form gives.
    pub(crate) fn with_direct(
        mut self,
        specialize: impl Fn(&[Arg]) -> Option<Direct> + Send + Sync + 'static,
    ) -> Kernel {
        self.direct = Some(Arc::new(specialize));
        self
    }

    /// The direct form for a call whose arguments come from `from`, if
    /// the kernel has one for them.
    pub(crate) fn direct(&self, from: &[Arg]) -> Option<Direct> {
        self.direct.as_ref().and_then(|d| d(from))
    }

    /// A kernel whose column form applies the row form to each slot: for
    /// functions of several arguments that no Arrow kernel covers.
    pub(crate) fn rowwise(
        ret: DataType,
        row: impl Fn(&[&Value]) -> Value + Send + Sync + 'static,
    ) -> Kernel {
        let row: Arc<RowFn> = Arc::new(row);
        let r = row.clone();
        Kernel {
            row,
            column: Arc::new(move |args: &[ArrayRef], len: usize| {
                let mut vals: Vec<Value> = vec![Value::Null; args.len()];
                let mut out = Vec::with_capacity(len);
                for i in 0..len {
                    for (v, a) in vals.iter_mut().zip(args) {
                        *v = value_at(a.as_ref(), i)?;
                    }
                    let refs: SmallVec<[&Value; 8]> = vals.iter().collect();
                    out.push(r(&refs));
                }
                build_array(&ret, len, |i| std::mem::take(&mut out[i]))
            }),
            direct: None,
        }
    }

    /// Evaluates on one row's arguments (by reference: a column or a
    /// literal argument is not copied).
    #[inline]
    pub(crate) fn row(&self, args: &[&Value]) -> Value {
        (self.row)(args)
    }

    /// Evaluates on columns of `len` rows.
    pub(crate) fn column(&self, args: &[ArrayRef], len: usize) -> Result<ArrayRef> {
        (self.column)(args, len)
    }
}

/// A primitive array mapped slot by slot, nulls kept, `None` giving null.
fn map_prim<I: ArrowPrimitiveType, O: ArrowPrimitiveType>(
    a: &ArrayRef,
    f: &(impl Fn(I::Native) -> Option<O::Native> + ?Sized),
) -> PrimitiveArray<O> {
    a.as_primitive::<I>().unary_opt(f)
}

macro_rules! unary_adapter {
    ($(#[$doc:meta])* $name:ident, $in:ty, $out:ty, $in_variant:ident, $out_variant:ident, $in_native:ty, $out_native:ty) => {
        $(#[$doc])*
        pub(crate) fn $name(
            f: impl Fn($in_native) -> Option<$out_native> + Send + Sync + 'static,
        ) -> Kernel {
            let f = Arc::new(f);
            let g = f.clone();
            Kernel::unary(
                move |a: &Value| match a {
                    Value::$in_variant(v) => f(*v).map_or(Value::Null, Value::$out_variant),
                    _ => Value::Null,
                },
                move |a: &[ArrayRef], _| Ok(Arc::new(map_prim::<$in, $out>(&a[0], &*g)) as ArrayRef),
            )
        }
    };
}

unary_adapter!(
    /// `double -> double`.
    f64_to_f64, Float64Type, Float64Type, Float64, Float64, f64, f64
);
unary_adapter!(
    /// `double -> bigint`.
    f64_to_i64, Float64Type, Int64Type, Float64, Int64, f64, i64
);
unary_adapter!(
    /// `bigint -> bigint`.
    i64_to_i64, Int64Type, Int64Type, Int64, Int64, i64, i64
);
unary_adapter!(
    /// `date -> bigint`.
    date_to_i64, Date32Type, Int64Type, Date, Int64, i32, i64
);

/// `timestamp -> bigint`.
pub(crate) fn ts_to_i64(f: impl Fn(i64) -> Option<i64> + Send + Sync + 'static) -> Kernel {
    let f = Arc::new(f);
    let g = f.clone();
    Kernel::unary(
        move |a: &Value| match a {
            Value::Timestamp(v) => f(*v).map_or(Value::Null, Value::Int64),
            _ => Value::Null,
        },
        move |a: &[ArrayRef], _| {
            Ok(Arc::new(map_prim::<TimestampMicrosecondType, Int64Type>(&a[0], &*g)) as ArrayRef)
        },
    )
}

/// `timestamp -> timestamp` (UTC).
pub(crate) fn ts_to_ts(f: impl Fn(i64) -> Option<i64> + Send + Sync + 'static) -> Kernel {
    let f = Arc::new(f);
    let g = f.clone();
    Kernel::unary(
        move |a: &Value| match a {
            Value::Timestamp(v) => f(*v).map_or(Value::Null, Value::Timestamp),
            _ => Value::Null,
        },
        move |a: &[ArrayRef], _| {
            let out = map_prim::<TimestampMicrosecondType, TimestampMicrosecondType>(&a[0], &*g)
                .with_timezone("UTC");
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `string -> string`: `f` writes the result into a buffer, or returns
/// false for null.
pub(crate) fn str_to_str(f: impl Fn(&str, &mut String) -> bool + Send + Sync + 'static) -> Kernel {
    let f = Arc::new(f);
    let g = f.clone();
    Kernel::unary(
        move |a: &Value| match a {
            Value::Utf8(s) => {
                let mut out = String::new();
                if f(s, &mut out) {
                    Value::from(out)
                } else {
                    Value::Null
                }
            }
            _ => Value::Null,
        },
        move |a: &[ArrayRef], len| {
            let s = a[0].as_string::<i32>();
            let mut b = StringBuilder::with_capacity(len, s.values().len());
            let mut buf = String::new();
            for v in s.iter() {
                match v {
                    Some(v) => {
                        buf.clear();
                        if g(v, &mut buf) {
                            b.append_value(&buf);
                        } else {
                            b.append_null();
                        }
                    }
                    None => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()) as ArrayRef)
        },
    )
}

/// `string -> bigint`.
pub(crate) fn str_to_i64(f: impl Fn(&str) -> Option<i64> + Send + Sync + 'static) -> Kernel {
    let f = Arc::new(f);
    let g = f.clone();
    Kernel::unary(
        move |a: &Value| match a {
            Value::Utf8(s) => f(s).map_or(Value::Null, Value::Int64),
            _ => Value::Null,
        },
        move |a: &[ArrayRef], _| {
            let out: Int64Array = a[0]
                .as_string::<i32>()
                .iter()
                .map(|v| v.and_then(|v| g(v)))
                .collect();
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `string -> boolean`. Both forms read the first argument only.
pub(crate) fn str_to_bool(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Kernel {
    let f = Arc::new(f);
    let g = f.clone();
    Kernel::unary(
        move |a: &Value| match a {
            Value::Utf8(s) => Value::Boolean(f(s)),
            _ => Value::Null,
        },
        move |a: &[ArrayRef], _| {
            let s: &StringArray = a[0].as_string::<i32>();
            let out: BooleanArray = s.iter().map(|v| v.map(|v| g(v))).collect();
            Ok(Arc::new(out) as ArrayRef)
        },
    )
}

/// `timestamp -> string`.
pub(crate) fn ts_to_str(f: impl Fn(i64, &mut String) -> bool + Send + Sync + 'static) -> Kernel {
    let f = Arc::new(f);
    let g = f.clone();
    Kernel::unary(
        move |a: &Value| match a {
            Value::Timestamp(v) => {
                let mut out = String::new();
                if f(*v, &mut out) {
                    Value::from(out)
                } else {
                    Value::Null
                }
            }
            _ => Value::Null,
        },
        move |a: &[ArrayRef], len| {
            let t = a[0].as_primitive::<TimestampMicrosecondType>();
            let mut b = StringBuilder::with_capacity(len, len * 16);
            let mut buf = String::new();
            for v in t.iter() {
                match v {
                    Some(v) => {
                        buf.clear();
                        if g(v, &mut buf) {
                            b.append_value(&buf);
                        } else {
                            b.append_null();
                        }
                    }
                    None => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()) as ArrayRef)
        },
    )
}

/// True where `c` is true; a null slot is false.
pub(crate) fn true_mask(c: &BooleanArray) -> BooleanArray {
    match c.nulls() {
        Some(n) => BooleanArray::new(c.values() & n.inner(), None),
        None => c.clone(),
    }
}
