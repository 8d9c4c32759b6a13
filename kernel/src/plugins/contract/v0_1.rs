//! `trellis:plugin@0.1.0`, the first released contract, run through the
//! latest one: every import delegates to the latest host function, every
//! type is converted at the boundary. What 0.1.0 lacks (`get-many`,
//! `before-write-batch`) its plugins never call; the sandbox calls their
//! `before-write` once per record of a batch instead.

use crate::plugins::contract::latest::trellis::plugin as new;
use crate::plugins::sandbox::State;

wasmtime::component::bindgen!({
    path: "../wit/trellis-plugin@0.1.0",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
});

use trellis::plugin::{host, kv, log, records, types};

type HostResult<T> = wasmtime::Result<Result<T, types::HostError>>;

/// A latest host answer, converted for a 0.1.0 guest.
fn down<T, U>(
    r: wasmtime::Result<Result<T, new::types::HostError>>,
    f: impl FnOnce(T) -> U,
) -> HostResult<U> {
    Ok(r?.map(f).map_err(host_error))
}

fn host_error(e: new::types::HostError) -> types::HostError {
    use new::types::HostError as N;
    match e {
        N::Denied(m) => types::HostError::Denied(m),
        N::NotFound(m) => types::HostError::NotFound(m),
        N::Invalid(list) => types::HostError::Invalid(
            list.into_iter()
                .map(|f| types::FieldError {
                    field: f.field,
                    code: f.code,
                    message: f.message,
                })
                .collect(),
        ),
        N::Limit(m) => types::HostError::Limit(m),
        N::Failed(m) => types::HostError::Failed(m),
    }
}

fn http_response(r: new::types::HttpResponse) -> types::HttpResponse {
    types::HttpResponse {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

impl types::Host for State {}

impl records::Host for State {
    async fn get(&mut self, object_type: String, id: String) -> HostResult<String> {
        down(new::records::Host::get(self, object_type, id).await, |v| v)
    }

    async fn query(
        &mut self,
        object_type: String,
        filter: String,
        sort: String,
        limit: u32,
        cursor: Option<String>,
    ) -> HostResult<String> {
        let r = new::records::Host::query(self, object_type, filter, sort, limit, cursor).await;
        down(r, |v| v)
    }

    async fn create(&mut self, object_type: String, fields: String) -> HostResult<String> {
        down(
            new::records::Host::create(self, object_type, fields).await,
            |v| v,
        )
    }

    async fn update(
        &mut self,
        object_type: String,
        id: String,
        patch: String,
        version: i64,
    ) -> HostResult<String> {
        let r = new::records::Host::update(self, object_type, id, patch, version).await;
        down(r, |v| v)
    }

    async fn delete(&mut self, object_type: String, id: String) -> HostResult<()> {
        down(
            new::records::Host::delete(self, object_type, id).await,
            |v| v,
        )
    }
}

impl kv::Host for State {
    async fn get(&mut self, key: String) -> HostResult<Option<Vec<u8>>> {
        down(new::kv::Host::get(self, key).await, |v| v)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> HostResult<()> {
        down(new::kv::Host::set(self, key, value).await, |v| v)
    }

    async fn delete(&mut self, key: String) -> HostResult<()> {
        down(new::kv::Host::delete(self, key).await, |v| v)
    }

    async fn list_keys(&mut self, prefix: String, limit: u32) -> HostResult<Vec<String>> {
        down(new::kv::Host::list_keys(self, prefix, limit).await, |v| v)
    }
}

impl log::Host for State {
    async fn write(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            log::Level::Debug => new::log::Level::Debug,
            log::Level::Info => new::log::Level::Info,
            log::Level::Warn => new::log::Level::Warn,
            log::Level::Error => new::log::Level::Error,
        };
        new::log::Host::write(self, level, message).await
    }
}

impl host::Host for State {
    async fn now_ms(&mut self) -> wasmtime::Result<i64> {
        new::host::Host::now_ms(self).await
    }

    async fn random_bytes(&mut self, n: u32) -> wasmtime::Result<Vec<u8>> {
        new::host::Host::random_bytes(self, n).await
    }

    async fn config(&mut self) -> wasmtime::Result<String> {
        new::host::Host::config(self).await
    }

    async fn tenant_id(&mut self) -> wasmtime::Result<String> {
        new::host::Host::tenant_id(self).await
    }

    async fn http_fetch(
        &mut self,
        request: types::OutboundRequest,
    ) -> HostResult<types::HttpResponse> {
        let request = new::types::OutboundRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        down(
            new::host::Host::http_fetch(self, request).await,
            http_response,
        )
    }

    async fn send_email(&mut self, to: String, subject: String, body: String) -> HostResult<()> {
        down(
            new::host::Host::send_email(self, to, subject, body).await,
            |v| v,
        )
    }

    async fn enqueue_job(
        &mut self,
        name: String,
        payload: String,
        delay_ms: u64,
    ) -> HostResult<String> {
        down(
            new::host::Host::enqueue_job(self, name, payload, delay_ms).await,
            |v| v,
        )
    }

    async fn emit_event(&mut self, name: String, payload: String) -> HostResult<()> {
        down(
            new::host::Host::emit_event(self, name, payload).await,
            |v| v,
        )
    }
}

/// A latest write event, for a 0.1.0 guest.
pub fn write_event(e: &new::types::WriteEvent) -> types::WriteEvent {
    types::WriteEvent {
        object_type: e.object_type.clone(),
        op: match e.op {
            new::types::WriteOp::Create => types::WriteOp::Create,
            new::types::WriteOp::Update => types::WriteOp::Update,
            new::types::WriteOp::Delete => types::WriteOp::Delete,
        },
        record_id: e.record_id.clone(),
        before: e.before.clone(),
        after: e.after.clone(),
    }
}

/// A 0.1.0 guest's hook answer, as the latest type.
pub fn hook_outcome(o: types::HookOutcome) -> new::types::HookOutcome {
    match o {
        types::HookOutcome::Accept => new::types::HookOutcome::Accept,
        types::HookOutcome::Patch(p) => new::types::HookOutcome::Patch(p),
        types::HookOutcome::Reject(errors) => new::types::HookOutcome::Reject(
            errors
                .into_iter()
                .map(|f| new::types::FieldError {
                    field: f.field,
                    code: f.code,
                    message: f.message,
                })
                .collect(),
        ),
    }
}

/// A latest route request, for a 0.1.0 guest.
pub fn http_request(r: &new::types::HttpRequest) -> types::HttpRequest {
    types::HttpRequest {
        method: r.method.clone(),
        path: r.path.clone(),
        query: r.query.clone(),
        headers: r.headers.clone(),
        body: r.body.clone(),
    }
}

/// A 0.1.0 guest's route answer, as the latest type.
pub fn http_response_up(r: types::HttpResponse) -> new::types::HttpResponse {
    new::types::HttpResponse {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}

/// A 0.1.0 guest's panels, as the latest type.
pub fn panels(list: Vec<types::Panel>) -> Vec<new::types::Panel> {
    list.into_iter()
        .map(|p| new::types::Panel {
            id: p.id,
            title: p.title,
            items: p
                .items
                .into_iter()
                .map(|i| new::types::PanelItem {
                    label: i.label,
                    value: i.value,
                    link: i.link,
                })
                .collect(),
        })
        .collect()
}
