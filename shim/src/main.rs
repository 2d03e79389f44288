//! `containerd-shim-chaperone-v2`: the Task service is not built yet (see the shim issue).

fn main() -> std::process::ExitCode {
    eprintln!(
        "containerd-shim-chaperone-v2 ({}): the containerd Task service is not implemented yet",
        chaperone_shim::RUNTIME_TYPE
    );
    std::process::ExitCode::FAILURE
}
