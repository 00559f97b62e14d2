//! damselfly (being built)
