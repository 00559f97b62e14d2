//! Release-mode measurements (ignored by default).
