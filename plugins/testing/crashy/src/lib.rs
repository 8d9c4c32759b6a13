//! Hostile: panics after every contact write.
use trellis_plugin_sdk::{Plugin, WriteEvent, register_plugin};

struct Crashy;

impl Plugin for Crashy {
    fn new() -> Self {
        Crashy
    }

    #[allow(clippy::panic)]
    fn after_write(&mut self, event: WriteEvent) -> Result<(), String> {
        panic!("crashy cannot cope with {:?}", event.record_id);
    }
}

register_plugin!(Crashy);
