//! Built against a contract version no kernel supports yet (9.0.0), to test
//! that the kernel refuses it with a clear message.
wit_bindgen::generate!({
    inline: "
        package trellis:plugin@9.0.0;
        interface guest {
            describe: func() -> string;
        }
        world plugin {
            export guest;
        }
    ",
    world: "plugin",
});

struct Future;

impl exports::trellis::plugin::guest::Guest for Future {
    fn describe() -> String {
        "{\"id\":\"future\",\"version\":\"0.1.0\",\"contract\":\"9.0.0\"}".to_owned()
    }
}

export!(Future);
