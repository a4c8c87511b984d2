// Empty: present so that the build-dependency in Cargo.toml takes part in feature
// unification (see the note there).
fn main() {}
