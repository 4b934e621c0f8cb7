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
    // A pulled binlog is decoded without copying: the payload, the prewrite value inside it and
    // the row bytes inside that are slices of the one receive buffer (a 100 MB transaction is
    // held once, not three times).
    tonic_prost_build::configure()
        .bytes(".binlog.Entity.payload")
        .bytes(".binlog.Binlog.prewrite_value")
        .bytes(".binlog.TableMutation")
        .compile_fds(descriptors)?;
    Ok(())
}
