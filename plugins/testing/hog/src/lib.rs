//! Hostile: allocates without end.
use trellis_plugin_sdk::{HookOutcome, Plugin, WriteEvent, register_plugin};

struct Hog;

impl Plugin for Hog {
    fn new() -> Self {
        Hog
    }

    fn before_write(&mut self, _event: WriteEvent) -> HookOutcome {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

register_plugin!(Hog);
