//! Reports: figures (PNG/SVG/CSV) now; the HTML report builds on them.

pub mod plot;
