//! The IAM probe against the simulated IAM on loopback.

use linkbot::diagnosis::verdict::IamOutcome;
use linkbot::domain::BaseUrl;
use linkbot::iam::IamClient;
use linkbot::metrics::Metrics;
use linkbot::net::Net;
use linkbot::secret::Secret;
use linkbot::sim::iam as sim;
use std::future::Future;
use std::time::Duration;

const GOOD: &str = "kq2V8hN0Zt1mWcXb3fLpGOODKEY0000000000000";
const BAD: &str = "zzTopSecretDeletedKey1234567890abcdefghij";

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the test took longer than 20 s")
}

#[tokio::test]
async fn an_accepted_key_is_accepted_and_sent_only_in_the_form() {
    bounded(async {
        let iam = sim::start(&[GOOD]).await;
        let client = IamClient::new(
            BaseUrl::new(iam.base_url()).unwrap(),
            Metrics::new(),
            &Net::direct(),
        )
        .unwrap();
        assert_eq!(client.probe(&Secret::new(GOOD)).await, IamOutcome::Accepted);
        let requests = iam.requests();
        assert_eq!(requests.len(), 1);
        assert_eq!(
            requests[0].get("grant_type").map(String::as_str),
            Some("urn:ibm:params:oauth:grant-type:apikey")
        );
        assert_eq!(requests[0].get("apikey").map(String::as_str), Some(GOOD));
        assert!(!format!("{client:?}").contains(GOOD));
    })
    .await;
}

#[tokio::test]
async fn a_deleted_key_is_rejected_with_iams_code_and_never_the_key() {
    bounded(async {
        let iam = sim::start(&[GOOD]).await;
        let client = IamClient::new(
            BaseUrl::new(iam.base_url()).unwrap(),
            Metrics::new(),
            &Net::direct(),
        )
        .unwrap();
        let outcome = client.probe(&Secret::new(BAD)).await;
        let IamOutcome::Rejected { detail } = &outcome else {
            panic!("expected Rejected, got {outcome:?}")
        };
        assert!(detail.contains("BXNIM0415E"), "{detail}");
        assert!(
            detail.contains("Provided API key could not be found"),
            "{detail}"
        );
        assert!(!format!("{outcome:?}").contains(BAD));
        assert_eq!(iam.request_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn iam_answering_503_is_unreachable_and_a_later_probe_works() {
    bounded(async {
        let iam = sim::start(&[GOOD]).await;
        iam.set_unavailable(true);
        let client = IamClient::new(
            BaseUrl::new(iam.base_url()).unwrap(),
            Metrics::new(),
            &Net::direct(),
        )
        .unwrap();
        let outcome = client.probe(&Secret::new(GOOD)).await;
        let IamOutcome::Unreachable { detail } = &outcome else {
            panic!("expected Unreachable, got {outcome:?}")
        };
        assert!(detail.contains("503"), "{detail}");
        assert!(!detail.contains(GOOD));
        iam.set_unavailable(false);
        assert_eq!(client.probe(&Secret::new(GOOD)).await, IamOutcome::Accepted);
        assert_eq!(iam.request_count(), 2);
    })
    .await;
}

#[tokio::test]
async fn a_closed_port_is_unreachable_without_the_key() {
    bounded(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let client = IamClient::new(
            BaseUrl::parse(&format!("http://{addr}/")).unwrap(),
            Metrics::new(),
            &Net::direct(),
        )
        .unwrap();
        let outcome = client.probe(&Secret::new(GOOD)).await;
        let IamOutcome::Unreachable { detail } = &outcome else {
            panic!("expected Unreachable, got {outcome:?}")
        };
        assert!(detail.contains("could not be reached"), "{detail}");
        assert!(!detail.contains(GOOD));
    })
    .await;
}

#[tokio::test]
async fn a_silent_iam_is_unreachable_after_the_timeout() {
    bounded(async {
        // Accepts the connection, never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let client = IamClient::with_timeout(
            BaseUrl::parse(&format!("http://{addr}/")).unwrap(),
            Duration::from_millis(300),
            &Net::direct(),
        )
        .unwrap();
        let outcome = client.probe(&Secret::new(GOOD)).await;
        assert_eq!(
            outcome,
            IamOutcome::Unreachable {
                detail: "IAM did not answer in time".to_string()
            }
        );
        hold.abort();
    })
    .await;
}
