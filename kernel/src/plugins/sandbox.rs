//! One plugin invocation: a fresh [`Store`] from the plugin's `InstancePre`,
//! hard limits set before the guest runs a single instruction, the call, and
//! whatever went wrong turned into a [`PluginError`].
//!
//! Limits per invocation: a deadline enforced by epoch interruption (the
//! guest yields to the executor every tick and is killed at the deadline,
//! whatever it is doing), a memory cap (`StoreLimits`), a cap on host calls,
//! and caps on the sizes of what goes in and comes out. A trapped store is
//! dropped; the next call starts from the `InstancePre` again, so nothing
//! leaks between calls or tenants.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::plugins::contract;
use crate::plugins::imports::CallEnv;
use crate::plugins::manifest::Manifest;

use crate::plugins::contract::{latest, v0_1};

pub use latest::trellis::plugin::types::{
    FieldError as WitFieldError, HookOutcome, HostError, HttpRequest, HttpResponse,
    OutboundRequest, Panel, WriteEvent, WriteOp,
};

/// Limits of one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub deadline: Duration,
    pub memory_bytes: usize,
    pub host_calls: u32,
    /// Largest input (record JSON, request body) and output accepted.
    pub io_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_millis(1000),
            memory_bytes: 64 << 20,
            host_calls: 1000,
            io_bytes: 1 << 20,
        }
    }
}

/// What went wrong in an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Killed at its deadline.
    Timeout,
    /// Stopped at its memory cap.
    Memory,
    /// Made more host calls than allowed.
    HostCalls,
    /// Input or output over the size cap.
    TooLarge(String),
    /// The guest trapped or panicked.
    Trap(String),
    /// The plugin could not be loaded or instantiated.
    Load(String),
}

/// A failed invocation, named by plugin and version.
#[derive(Debug, Clone)]
pub struct PluginError {
    pub plugin: String,
    pub version: String,
    pub failure: Failure,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.failure {
            Failure::Timeout => "was stopped at its deadline".to_owned(),
            Failure::Memory => "was stopped at its memory cap".to_owned(),
            Failure::HostCalls => "made more host calls than allowed".to_owned(),
            Failure::TooLarge(m) => format!("exceeded a size limit: {m}"),
            Failure::Trap(m) => format!("failed: {m}"),
            Failure::Load(m) => format!("could not be loaded: {m}"),
        };
        write!(f, "plugin {}@{} {what}", self.plugin, self.version)
    }
}

/// A call of one export.
#[derive(Debug, Clone)]
pub enum Call {
    Describe,
    Install(Option<String>),
    BeforeWrite(WriteEvent),
    /// The before-write hook of a batch (one type, one operation): one
    /// invocation, one outcome per event.
    BeforeWriteBatch(Vec<WriteEvent>),
    AfterWrite(WriteEvent),
    RunJob(String, String),
    Http(HttpRequest),
    Panels(String, String),
    PersonalData(String),
    ErasePersonalData(String),
}

/// An export's answer.
#[derive(Debug, Clone)]
pub enum Reply {
    Describe(String),
    Done(Result<(), String>),
    Hook(HookOutcome),
    Hooks(Vec<HookOutcome>),
    Http(HttpResponse),
    Panels(Vec<Panel>),
    PersonalData(Option<String>),
}

/// A plugin version ready to instantiate.
pub struct Loaded {
    pub manifest: Manifest,
    pub sha256: String,
    pre: Pre,
}

/// A component prepared for the contract version it was built for.
enum Pre {
    V0_1(v0_1::PluginPre<State>),
    V0_2(latest::PluginPre<State>),
}

impl Loaded {
    /// The contract version the component was built for.
    pub fn contract(&self) -> &'static str {
        match self.pre {
            Pre::V0_1(_) => "0.1.0",
            Pre::V0_2(_) => "0.2.0",
        }
    }
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("plugin", &self.manifest.id)
            .field("version", &self.manifest.version)
            .finish()
    }
}

/// Memory limits that remember whether they refused a growth, so a guest
/// aborting on a failed allocation is reported as the memory cap it hit.
pub struct Limiter {
    inner: StoreLimits,
    pub refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Everything one invocation's host calls can reach.
pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    pub env: Arc<CallEnv>,
    pub host_calls: u32,
    pub max_host_calls: u32,
    pub host_calls_exceeded: bool,
    /// `(level, message)` lines the plugin logged.
    pub logs: Vec<(String, String)>,
    stderr: MemoryOutputPipe,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl State {
    /// Counts a host call; past the cap the guest is stopped.
    pub fn count_call(&mut self) -> wasmtime::Result<()> {
        self.host_calls += 1;
        if self.host_calls > self.max_host_calls {
            self.host_calls_exceeded = true;
            return Err(wasmtime::Error::msg("host call limit reached"));
        }
        Ok(())
    }
}

/// The linker every plugin is instantiated with: our imports and a WASI
/// with nothing in it (no files, environment, arguments or sockets: Rust's
/// std imports WASI even when a plugin uses none of it).
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // Every supported version's imports: their interface names carry the
    // version, so they sit side by side.
    latest::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<State>>(&mut linker, |s| s)?;
    v0_1::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<State>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Checks the component was built for a contract this kernel supports and
/// prepares it for instantiation.
pub fn prepare(
    linker: &Linker<State>,
    component: &wasmtime::component::Component,
    manifest: Manifest,
    sha256: String,
) -> std::result::Result<Loaded, String> {
    let engine = linker.engine();
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let built_for = exports
        .iter()
        .find_map(|e| e.strip_prefix("trellis:plugin/guest@"));
    let Some(version) = built_for.filter(|v| contract::SUPPORTED.contains(v)) else {
        let built_for = built_for
            .map(|v| format!("contract {v}"))
            .unwrap_or_else(|| "no Trellis contract".to_owned());
        return Err(format!(
            "the component was built for {built_for}; this kernel supports contract {}",
            contract::SUPPORTED.join(", ")
        ));
    };
    if version != manifest.contract {
        return Err(format!(
            "the manifest says contract {} but the component was built for contract {version}",
            manifest.contract
        ));
    }
    let pre = linker
        .instantiate_pre(component)
        .map_err(|e| format!("its imports cannot be satisfied: {e}"))?;
    let mismatch = |e: wasmtime::Error| format!("it does not match contract {version}: {e}");
    let pre = match version {
        "0.1.0" => Pre::V0_1(v0_1::PluginPre::new(pre).map_err(mismatch)?),
        _ => Pre::V0_2(latest::PluginPre::new(pre).map_err(mismatch)?),
    };
    Ok(Loaded {
        manifest,
        sha256,
        pre,
    })
}

/// What an invocation produced, with the log lines to keep.
pub struct Outcome {
    pub reply: Result<Reply, Failure>,
    pub logs: Vec<(String, String)>,
    pub host_calls: u32,
}

/// Instantiates a plugin in a fresh store and drops it without a call:
/// the per-invocation cost the benchmark measures on its own.
pub async fn instantiate_only(
    engine: &wasmtime::Engine,
    loaded: &Loaded,
    env: Arc<CallEnv>,
    limits: Limits,
) -> Result<(), String> {
    let mut store = new_store(engine, env, limits);
    let instantiated = match &loaded.pre {
        Pre::V0_1(pre) => pre.instantiate_async(&mut store).await.map(drop),
        Pre::V0_2(pre) => pre.instantiate_async(&mut store).await.map(drop),
    };
    instantiated.map_err(|e| e.to_string())
}

/// A store with the invocation's limits and deadline set, before the guest
/// runs a single instruction.
fn new_store(engine: &wasmtime::Engine, env: Arc<CallEnv>, limits: Limits) -> Store<State> {
    let stderr = MemoryOutputPipe::new(16 << 10);
    let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
    let state = State {
        wasi,
        table: ResourceTable::new(),
        limiter: Limiter {
            inner: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(32)
                .tables(64)
                .memories(8)
                .trap_on_grow_failure(false)
                .build(),
            refused: false,
        },
        env,
        host_calls: 0,
        max_host_calls: limits.host_calls,
        host_calls_exceeded: false,
        logs: Vec::new(),
        stderr,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    // The deadline is checked at every tick, where the guest also yields to
    // the executor so one plugin cannot hold a worker thread.
    let started = Instant::now();
    let deadline = limits.deadline;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if started.elapsed() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Yield(1)
        })
    });
    store
}

/// Runs `call` in a fresh store under `limits`.
pub async fn invoke(
    engine: &wasmtime::Engine,
    loaded: &Loaded,
    env: Arc<CallEnv>,
    limits: Limits,
    call: Call,
) -> Outcome {
    if let Some(what) = input_too_large(&call, limits.io_bytes) {
        return Outcome {
            reply: Err(Failure::TooLarge(what)),
            logs: Vec::new(),
            host_calls: 0,
        };
    }
    let deadline = limits.deadline;
    let mut store = new_store(engine, env, limits);
    // Host calls (database, HTTP) are awaited, not ticked: the whole call is
    // bounded too, with a little grace for the trap to land first.
    let run = run_call(&loaded.pre, &mut store, call);
    let result = tokio::time::timeout(deadline + Duration::from_millis(250), run).await;
    let state = store.data();
    let mut logs = state.logs.clone();
    let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
    if !stderr.trim().is_empty() {
        logs.push(("error".to_owned(), stderr.trim().to_owned()));
    }
    let reply = match result {
        Err(_) => Err(Failure::Timeout),
        Ok(Ok(reply)) => check_output(reply, limits.io_bytes),
        Ok(Err(e)) => Err(classify(&e, state)),
    };
    Outcome {
        reply,
        logs,
        host_calls: state.host_calls,
    }
}

async fn run_call(pre: &Pre, store: &mut Store<State>, call: Call) -> wasmtime::Result<Reply> {
    match pre {
        Pre::V0_2(pre) => run_latest(pre, store, call).await,
        Pre::V0_1(pre) => run_v0_1(pre, store, call).await,
    }
}

async fn run_latest(
    pre: &latest::PluginPre<State>,
    store: &mut Store<State>,
    call: Call,
) -> wasmtime::Result<Reply> {
    let plugin = pre.instantiate_async(&mut *store).await?;
    let guest = plugin.trellis_plugin_guest();
    Ok(match call {
        Call::Describe => Reply::Describe(guest.call_describe(&mut *store).await?),
        Call::Install(previous) => {
            Reply::Done(guest.call_install(&mut *store, previous.as_deref()).await?)
        }
        Call::BeforeWrite(event) => {
            Reply::Hook(guest.call_before_write(&mut *store, &event).await?)
        }
        Call::BeforeWriteBatch(events) => {
            let outcomes = guest.call_before_write_batch(&mut *store, &events).await?;
            if outcomes.len() != events.len() {
                return Err(wasmtime::Error::msg(format!(
                    "before-write-batch answered {} outcomes for {} events",
                    outcomes.len(),
                    events.len()
                )));
            }
            Reply::Hooks(outcomes)
        }
        Call::AfterWrite(event) => Reply::Done(guest.call_after_write(&mut *store, &event).await?),
        Call::RunJob(name, payload) => {
            Reply::Done(guest.call_run_job(&mut *store, &name, &payload).await?)
        }
        Call::Http(request) => Reply::Http(guest.call_handle_http(&mut *store, &request).await?),
        Call::Panels(object, record) => {
            Reply::Panels(guest.call_panels(&mut *store, &object, &record).await?)
        }
        Call::PersonalData(id) => {
            Reply::PersonalData(guest.call_personal_data(&mut *store, &id).await?)
        }
        Call::ErasePersonalData(id) => {
            Reply::Done(guest.call_erase_personal_data(&mut *store, &id).await?)
        }
    })
}

/// A call of a plugin built for 0.1.0, through the shim.
async fn run_v0_1(
    pre: &v0_1::PluginPre<State>,
    store: &mut Store<State>,
    call: Call,
) -> wasmtime::Result<Reply> {
    let plugin = pre.instantiate_async(&mut *store).await?;
    let guest = plugin.trellis_plugin_guest();
    Ok(match call {
        Call::Describe => Reply::Describe(guest.call_describe(&mut *store).await?),
        Call::Install(previous) => {
            Reply::Done(guest.call_install(&mut *store, previous.as_deref()).await?)
        }
        Call::BeforeWrite(event) => {
            let event = v0_1::write_event(&event);
            Reply::Hook(v0_1::hook_outcome(
                guest.call_before_write(&mut *store, &event).await?,
            ))
        }
        // 0.1.0 has no batch hook: the same instance answers each event in
        // turn (one invocation, so the limits cover the whole batch).
        Call::BeforeWriteBatch(events) => {
            let mut outcomes = Vec::with_capacity(events.len());
            for event in &events {
                let event = v0_1::write_event(event);
                let outcome = guest.call_before_write(&mut *store, &event).await?;
                outcomes.push(v0_1::hook_outcome(outcome));
            }
            Reply::Hooks(outcomes)
        }
        Call::AfterWrite(event) => {
            let event = v0_1::write_event(&event);
            Reply::Done(guest.call_after_write(&mut *store, &event).await?)
        }
        Call::RunJob(name, payload) => {
            Reply::Done(guest.call_run_job(&mut *store, &name, &payload).await?)
        }
        Call::Http(request) => {
            let request = v0_1::http_request(&request);
            Reply::Http(v0_1::http_response_up(
                guest.call_handle_http(&mut *store, &request).await?,
            ))
        }
        Call::Panels(object, record) => Reply::Panels(v0_1::panels(
            guest.call_panels(&mut *store, &object, &record).await?,
        )),
        Call::PersonalData(id) => {
            Reply::PersonalData(guest.call_personal_data(&mut *store, &id).await?)
        }
        Call::ErasePersonalData(id) => {
            Reply::Done(guest.call_erase_personal_data(&mut *store, &id).await?)
        }
    })
}

fn classify(e: &wasmtime::Error, state: &State) -> Failure {
    if state.host_calls_exceeded {
        return Failure::HostCalls;
    }
    if state.limiter.refused {
        return Failure::Memory;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Timeout,
        Some(Trap::UnreachableCodeReached) => {
            Failure::Trap("the plugin panicked or aborted (see its log)".to_owned())
        }
        Some(t) => Failure::Trap(t.to_string()),
        None => Failure::Trap(format!("{e:#}")),
    }
}

fn input_too_large(call: &Call, max: usize) -> Option<String> {
    let event_size = |e: &WriteEvent| {
        e.before.as_ref().map_or(0, String::len) + e.after.as_ref().map_or(0, String::len)
    };
    let size = match call {
        Call::BeforeWrite(e) | Call::AfterWrite(e) => event_size(e),
        Call::BeforeWriteBatch(events) => events.iter().map(event_size).sum(),
        Call::RunJob(_, payload) => payload.len(),
        Call::Http(r) => r.body.len(),
        Call::Panels(_, record) => record.len(),
        Call::PersonalData(id) | Call::ErasePersonalData(id) => id.len(),
        Call::Describe | Call::Install(_) => 0,
    };
    (size > max).then(|| format!("input of {size} bytes (at most {max})"))
}

fn check_output(reply: Reply, max: usize) -> Result<Reply, Failure> {
    let size = match &reply {
        Reply::Describe(s) => s.len(),
        Reply::Done(r) => r.as_ref().err().map_or(0, String::len),
        Reply::Hook(o) => outcome_size(o),
        Reply::Hooks(list) => list.iter().map(outcome_size).sum(),
        Reply::Http(r) => r.body.len(),
        Reply::PersonalData(d) => d.as_ref().map_or(0, String::len),
        Reply::Panels(p) => p
            .iter()
            .flat_map(|p| &p.items)
            .map(|i| i.label.len() + i.value.len())
            .sum(),
    };
    if size > max {
        return Err(Failure::TooLarge(format!(
            "output of {size} bytes (at most {max})"
        )));
    }
    Ok(reply)
}

fn outcome_size(o: &HookOutcome) -> usize {
    match o {
        HookOutcome::Patch(p) => p.len(),
        HookOutcome::Reject(errors) => errors.iter().map(|e| e.message.len()).sum(),
        HookOutcome::Accept => 0,
    }
}
