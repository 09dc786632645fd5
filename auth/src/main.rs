//! `tribune-auth`: the auth-callout service (issue 5 fills this in).

fn main() {
    eprintln!("tribune-auth: not implemented yet; see issue 5");
    std::process::exit(2);
}
