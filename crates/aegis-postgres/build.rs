// `embed_migrations!` reads `migrations/` at compile time but does not tell cargo to watch the
// folder, so a new migration would not rebuild this crate. Watch it here.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
