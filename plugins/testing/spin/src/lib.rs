//! Hostile: never returns from a hook or a request.
use trellis_plugin_sdk::{HookOutcome, Plugin, Request, Response, WriteEvent, register_plugin};

struct Spin;

fn forever() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

impl Plugin for Spin {
    fn new() -> Self {
        Spin
    }

    fn before_write(&mut self, _event: WriteEvent) -> HookOutcome {
        forever()
    }

    fn handle_http(&mut self, _request: Request) -> Response {
        forever()
    }
}

register_plugin!(Spin);
