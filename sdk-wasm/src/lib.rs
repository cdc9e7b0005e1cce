//! Browser bindings of tokenrelay: being built (issue 5).
