fn main() {
    // The CLI (clap) comes with the driver process work.
}
