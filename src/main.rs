fn main() -> std::process::ExitCode {
    corepax::cli::main()
}
