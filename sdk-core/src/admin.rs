//! Admin REST client (being written).
