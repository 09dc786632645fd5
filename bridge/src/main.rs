//! `tribune-bridge`: MQTT to NATS bridge (issue 7 fills this in).

fn main() {
    eprintln!("tribune-bridge: not implemented yet; see issue 7");
    std::process::exit(2);
}
