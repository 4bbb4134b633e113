//! A value held borrowed or shared.
//!
//! Why: sessions and generations usually borrow their model and engine (zero cost), but
//! one that must move into a thread or an async task owns a share of them instead; one
//! type serves both without a lifetime on the owning form.

use std::sync::Arc;

/// `&'a T` or `Arc<T>`, dereferencing to `T` either way.
#[derive(Debug)]
pub(crate) enum Handle<'a, T> {
    /// Borrowed for `'a`.
    Borrowed(&'a T),
    /// Shared ownership (`'static` when `'a` is).
    Shared(Arc<T>),
}

impl<T> Clone for Handle<'_, T> {
    fn clone(&self) -> Self {
        match self {
            Handle::Borrowed(t) => Handle::Borrowed(t),
            Handle::Shared(t) => Handle::Shared(Arc::clone(t)),
        }
    }
}

impl<T> std::ops::Deref for Handle<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match self {
            Handle::Borrowed(t) => t,
            Handle::Shared(t) => t,
        }
    }
}
