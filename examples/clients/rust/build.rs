// Client stubs for the gateway's facade (and the messages it imports) from ../../../protos.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../protos");
    let facade = protos.join("ringrift/orchestrator/v1/orchestrator.proto");
    println!("cargo:rerun-if-changed={}", protos.display());
    tonic_build::configure()
        .build_server(false)
        .compile_protos(&[facade], &[protos])?;
    Ok(())
}
