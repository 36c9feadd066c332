//! A RingRift client in Rust, with stubs generated from protos/ by tonic-build: it connects
//! to a gateway with the cluster's TLS credentials, submits an `echo` job, follows the
//! job's events until it ends, reads the job, and streams its log. Each step prints one
//! line; the last is a JSON summary (what tests/integration/test_rust_client.py reads).
//!
//!     ringrift-client-example --gateway 127.0.0.1:50050 --ca ca.pem --cert cert.pem \
//!         --key key.pem [--domain localhost] [--message text]

use std::collections::HashMap;
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

pub mod ringrift {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("ringrift.common.v1");
        }
    }
    pub mod nodes {
        pub mod v1 {
            tonic::include_proto!("ringrift.nodes.v1");
        }
    }
    pub mod selfplay {
        pub mod v1 {
            tonic::include_proto!("ringrift.selfplay.v1");
        }
    }
    pub mod state {
        pub mod v1 {
            tonic::include_proto!("ringrift.state.v1");
        }
    }
    pub mod sync {
        pub mod v1 {
            tonic::include_proto!("ringrift.sync.v1");
        }
    }
    pub mod training {
        pub mod v1 {
            tonic::include_proto!("ringrift.training.v1");
        }
    }
    pub mod orchestrator {
        pub mod v1 {
            tonic::include_proto!("ringrift.orchestrator.v1");
        }
    }
}

use ringrift::common::v1::{EventFilter, EventType, JobSpec, JobState};
use ringrift::orchestrator::v1::orchestrator_service_client::OrchestratorServiceClient;
use ringrift::orchestrator::v1::{GetJobRequest, StreamJobLogsRequest, SubmitJobRequest, WatchEventsRequest};

type Error = Box<dyn std::error::Error>;

const TERMINAL: [EventType; 3] = [EventType::JobSucceeded, EventType::JobFailed, EventType::JobCancelled];
const WAIT: Duration = Duration::from_secs(120);

struct Args {
    gateway: String,
    ca: String,
    cert: String,
    key: String,
    domain: String,
    message: String,
}

const USAGE: &str = "usage: ringrift-client-example --gateway HOST:PORT --ca CA.pem --cert CERT.pem --key KEY.pem \
                     [--domain NAME] [--message TEXT]";

fn parse_args() -> Result<Args, Error> {
    let mut values: HashMap<String, String> = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let name = flag.strip_prefix("--").ok_or_else(|| format!("unexpected argument {flag:.40}; {USAGE}"))?;
        let value = args.next().ok_or_else(|| format!("--{name:.40} needs a value; {USAGE}"))?;
        values.insert(name.to_string(), value);
    }
    let mut take = |name: &str, default: Option<&str>| -> Result<String, Error> {
        match (values.remove(name), default) {
            (Some(value), _) => Ok(value),
            (None, Some(default)) => Ok(default.to_string()),
            (None, None) => Err(format!("--{name} is required; {USAGE}").into()),
        }
    };
    let parsed = Args {
        gateway: take("gateway", None)?,
        ca: take("ca", None)?,
        cert: take("cert", None)?,
        key: take("key", None)?,
        domain: take("domain", Some("localhost"))?,
        message: take("message", Some("hello-from-rust"))?,
    };
    if let Some(unknown) = values.keys().next() {
        return Err(format!("unknown option --{unknown:.40}; {USAGE}").into());
    }
    Ok(parsed)
}

fn read(path: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}").into())
}

async fn connect(args: &Args) -> Result<OrchestratorServiceClient<Channel>, Error> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&args.ca)?))
        .identity(Identity::from_pem(read(&args.cert)?, read(&args.key)?))
        .domain_name(args.domain.clone());
    let channel = Channel::from_shared(format!("https://{}", args.gateway))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    Ok(OrchestratorServiceClient::new(channel))
}

fn event_name(value: i32) -> &'static str {
    EventType::try_from(value).map(|t| t.as_str_name()).unwrap_or("EVENT_TYPE_UNKNOWN")
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = parse_args()?;
    let mut client = connect(&args).await?;
    println!("connected to {}", args.gateway);

    let spec = JobSpec {
        kind: "echo".into(),
        params: HashMap::from([("message".to_string(), args.message.clone())]),
        ..Default::default()
    };
    let submitted = client
        .submit_job(SubmitJobRequest { spec: Some(spec), idempotency_key: String::new() })
        .await?
        .into_inner();
    let job_id = submitted.job.ok_or("SubmitJob answered no job")?.job_id;
    println!("submitted {job_id}");

    // The job's events from the start of the log, followed until one ends it.
    let filter = EventFilter { subject: job_id.clone(), ..Default::default() };
    let mut events = client
        .watch_events(WatchEventsRequest { from_sequence: 0, filter: Some(filter) })
        .await?
        .into_inner();
    let mut seen: Vec<&'static str> = Vec::new();
    loop {
        let reply = tokio::time::timeout(WAIT, events.message()).await.map_err(|_| "no event for 120 s")??;
        let event = reply.ok_or("the event stream ended")?.event.ok_or("an empty event")?;
        let name = event_name(event.r#type);
        println!("event {} {name}", event.sequence);
        seen.push(name);
        if TERMINAL.iter().any(|t| *t as i32 == event.r#type) {
            break;
        }
    }

    let job = client.get_job(GetJobRequest { job_id: job_id.clone() }).await?.into_inner();
    let state = JobState::try_from(job.job.ok_or("GetJob answered no job")?.state)
        .map(|s| s.as_str_name())
        .unwrap_or("JOB_STATE_UNKNOWN");
    println!("job {job_id} {state}");

    let mut logs = client
        .stream_job_logs(StreamJobLogsRequest { job_id: job_id.clone(), attempt: 0, follow: false })
        .await?
        .into_inner();
    let mut output = Vec::new();
    while let Some(chunk) = logs.message().await? {
        if !chunk.stderr {
            output.extend_from_slice(&chunk.data);
        }
    }
    let log = String::from_utf8_lossy(&output).to_string();
    println!("log {}", json_string(log.trim_end()));

    let names: Vec<String> = seen.iter().map(|n| json_string(n)).collect();
    println!(
        "{{\"job_id\": {}, \"state\": {}, \"events\": [{}], \"log\": {}}}",
        json_string(&job_id),
        json_string(state),
        names.join(", "),
        json_string(&log)
    );
    if state != "JOB_STATE_SUCCEEDED" {
        return Err(format!("the job ended {state}").into());
    }
    Ok(())
}
