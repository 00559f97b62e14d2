//! damselfly-actors (being built)
