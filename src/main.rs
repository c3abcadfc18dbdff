// mimalloc instead of glibc's malloc: allocation and free were ~12% of the leader's CPU
// under a pipelined SET load (perf, results/README.md), mostly small per-request objects.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    corepax::cli::main()
}
