//! A client's cancel request (psql's Ctrl-C, JDBC's `Statement.cancel()`, psycopg's `cancel()`)
//! stops the connection's running statement; the connection goes on.
//!
//! pgwire races a cancel request only against the planning of a statement: the rows are computed
//! while they are sent, after that race is over. So each connection has a [`CancelSignal`], found
//! by the key its client was given at start-up, and each of its plans runs under
//! [`CancellableExec`], whose streams end with `57014` as soon as the signal fires. Ending the
//! streams drops the plan, which stops its tasks and frees what they held.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::messages::cancel::CancelRequest;
use datafusion_postgres::pgwire::messages::startup::SecretKey;
use futures::StreamExt;
use tokio::sync::Notify;

/// Why a statement ended early.
#[derive(Debug)]
pub(super) enum Cancelled {
    /// Its client asked.
    ByClient,
    /// It ran longer than `--statement-timeout`.
    TimedOut(Duration),
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // PostgreSQL's own words, which clients and people recognise.
        match self {
            Self::ByClient => f.write_str("canceling statement due to user request"),
            Self::TimedOut(limit) => write!(
                f,
                "canceling statement due to statement timeout ({} s, the server's \
                 --statement-timeout)",
                limit.as_secs_f64()
            ),
        }
    }
}

impl std::error::Error for Cancelled {}

/// One connection's "stop the running statement".
#[derive(Debug, Default)]
pub(super) struct CancelSignal {
    fired: AtomicBool,
    wake: Notify,
}

impl CancelSignal {
    fn fire(&self) {
        self.fired.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    /// Forgets an earlier request: a cancel stops the statement running when it arrives, not
    /// the next one.
    fn reset(&self) {
        self.fired.store(false, Ordering::SeqCst);
    }

    /// Resolves once the signal has fired.
    async fn fired(&self) {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before the check, so a fire between the two is not missed.
            notified.as_mut().enable();
            if self.fired.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// The cancel signals of the open connections, by the key each client was given at start-up.
#[derive(Debug, Default)]
pub(super) struct CancelSignals {
    by_key: Mutex<HashMap<(i32, Bytes), Weak<CancelSignal>>>,
}

impl CancelSignals {
    /// Makes `signal` the one a cancel request with this key fires, until the returned guard drops.
    pub(super) fn register(
        self: &Arc<Self>,
        pid: i32,
        secret: &SecretKey,
        signal: &Arc<CancelSignal>,
    ) -> Registration {
        let key = (pid, secret.to_bytes());
        self.lock().insert(key.clone(), Arc::downgrade(signal));
        Registration {
            signals: self.clone(),
            key,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(i32, Bytes), Weak<CancelSignal>>> {
        // A panic elsewhere while the map was held leaves it whole: each step is one insert or
        // remove.
        self.by_key.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fire(&self, request: &CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes());
        let signal = self.lock().get(&key).and_then(Weak::upgrade);
        if let Some(signal) = signal {
            signal.fire();
        }
    }
}

/// A connection's place in [`CancelSignals`], removed when the connection ends.
#[derive(Debug)]
pub(super) struct Registration {
    signals: Arc<CancelSignals>,
    key: (i32, Bytes),
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.signals.lock().remove(&self.key);
    }
}

/// pgwire's handling of a cancel request (which stops a statement still planning), and the
/// connection's signal (which stops one running).
pub(super) struct CancelRequests {
    pub(super) planning: Arc<DefaultCancelHandler>,
    pub(super) running: Arc<CancelSignals>,
}

#[async_trait]
impl CancelHandler for CancelRequests {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.running.fire(&request);
        self.planning.on_cancel_request(request).await;
    }
}

/// Puts every plan of a connection's session under [`CancellableExec`]; the last physical
/// optimizer rule of the connection's session.
#[derive(Debug)]
pub(super) struct CancelOnRequest {
    pub(super) signal: Arc<CancelSignal>,
    /// How long a statement may run, from its first row's request.
    pub(super) timeout: Option<Duration>,
}

impl PhysicalOptimizerRule for CancelOnRequest {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.signal.reset();
        Ok(Arc::new(CancellableExec {
            input: plan,
            signal: self.signal.clone(),
            timeout: self.timeout,
        }))
    }

    fn name(&self) -> &str {
        "cancel_on_request"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Its input's rows, until the connection's cancel signal fires or the statement timeout passes.
#[derive(Debug)]
pub(super) struct CancellableExec {
    input: Arc<dyn ExecutionPlan>,
    signal: Arc<CancelSignal>,
    timeout: Option<Duration>,
}

impl DisplayAs for CancellableExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("CancellableExec")
    }
}

impl ExecutionPlan for CancellableExec {
    fn name(&self) -> &str {
        "CancellableExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(
                "CancellableExec has one input".to_owned(),
            ));
        }
        Ok(Arc::new(Self {
            input: children.swap_remove(0),
            signal: self.signal.clone(),
            timeout: self.timeout,
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let signal = self.signal.clone();
        let timeout = self.timeout;
        let fired: Pin<Box<dyn Future<Output = Cancelled> + Send>> = Box::pin(async move {
            match timeout {
                Some(limit) => tokio::select! {
                    () = signal.fired() => Cancelled::ByClient,
                    () = tokio::time::sleep(limit) => Cancelled::TimedOut(limit),
                },
                None => {
                    signal.fired().await;
                    Cancelled::ByClient
                }
            }
        });
        let rows = futures::stream::unfold(Some((input, fired)), |state| async move {
            let (mut input, mut fired) = state?;
            tokio::select! {
                biased;
                why = &mut fired => Some((
                    Err(DataFusionError::External(Box::new(why))),
                    None,
                )),
                batch = input.next() => batch.map(|batch| (batch, Some((input, fired)))),
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    fn session(signal: &Arc<CancelSignal>, timeout: Option<Duration>) -> SessionContext {
        let ctx = SessionContext::new();
        let rule = CancelOnRequest {
            signal: signal.clone(),
            timeout,
        };
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(ctx.state())
            .with_physical_optimizer_rule(Arc::new(rule))
            .build();
        SessionContext::new_with_state(state)
    }

    /// Runs, in `ctx`, a statement that is still running seconds later (in a debug build) yet
    /// short: the join does not yield to the runtime, which waits for it when the test ends.
    async fn long_statement(ctx: &SessionContext) -> DataFusionError {
        let frame = ctx
            .sql(
                "SELECT count(*) FROM generate_series(1, 30000) a(x) \
                 JOIN generate_series(1, 30000) b(y) ON a.x < b.y",
            )
            .await
            .expect("plans");
        let outcome = tokio::time::timeout(Duration::from_secs(60), frame.collect())
            .await
            .expect("ends within a minute");
        outcome.expect_err("stopped early")
    }

    // Multi-threaded: the task that fires the signal must run while the statement holds a thread.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_fired_signal_ends_a_running_statement_with_cancelled() {
        let signal = Arc::new(CancelSignal::default());
        let ctx = session(&signal, None);
        let fire = signal.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            fire.fire();
        });
        let error = long_statement(&ctx).await;
        assert!(
            matches!(error.find_root(), DataFusionError::External(e)
                if matches!(e.downcast_ref::<Cancelled>(), Some(Cancelled::ByClient))),
            "{error}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_statement_past_its_timeout_ends_with_the_timeout() {
        let signal = Arc::new(CancelSignal::default());
        let ctx = session(&signal, Some(Duration::from_millis(100)));
        let error = long_statement(&ctx).await;
        assert!(
            matches!(error.find_root(), DataFusionError::External(e)
                if matches!(e.downcast_ref::<Cancelled>(), Some(Cancelled::TimedOut(_)))),
            "{error}"
        );
        assert!(error.to_string().contains("statement timeout"), "{error}");
        let quick = ctx.sql("SELECT 1").await.expect("plans").collect().await;
        assert!(quick.is_ok(), "a statement within the timeout runs");
    }

    #[tokio::test]
    async fn a_cancel_before_a_statement_does_not_stop_it() {
        let signal = Arc::new(CancelSignal::default());
        signal.fire();
        let ctx = session(&signal, None);
        let batches = ctx
            .sql("SELECT 1")
            .await
            .expect("plans")
            .collect()
            .await
            .expect("runs: the earlier request was for no statement");
        assert_eq!(batches[0].num_rows(), 1);
    }
}
