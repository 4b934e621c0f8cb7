//! Compiles our own `.proto` files with protox, so building this crate needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "protos/binlog.proto",
        "protos/pump.proto",
        "protos/cistern.proto",
        "protos/pdpb.proto",
        "protos/pb_binlog.proto",
        "protos/secondary_binlog.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["protos"])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
