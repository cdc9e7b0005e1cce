//! REST types of PROTOCOL.md section 4 (being written).
