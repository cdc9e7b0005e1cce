//! Python bindings of tokenrelay: being built (issue 4).
