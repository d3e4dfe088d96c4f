//! `MemoryStore` against the conformance suite every backend passes.

use standings_core::MemoryStore;
use standings_test_support::conformance;

#[tokio::test]
async fn passes_the_conformance_suite() {
    let store = MemoryStore::new();
    conformance::run(&store, "mem").await;
}

#[tokio::test]
async fn passes_the_periods_suite() {
    let store = MemoryStore::new();
    standings_test_support::periods::run(&store, "mem").await;
}

#[tokio::test]
async fn passes_the_likes_suite() {
    let store = MemoryStore::new();
    standings_test_support::likes::run(&store, "mem").await;
}

#[tokio::test]
async fn passes_the_pages_suite() {
    let store = MemoryStore::new();
    standings_test_support::pages::run(&store, "mem").await;
}

#[tokio::test]
async fn passes_the_first_achiever_suite() {
    let store = MemoryStore::new();
    standings_test_support::ties::run(&store, "mem").await;
}

#[tokio::test]
async fn passes_the_list_calls_suite() {
    let store = MemoryStore::new();
    standings_test_support::many::run(&store, "mem").await;
}

#[tokio::test]
async fn passes_the_meta_suite() {
    let store = MemoryStore::new();
    standings_test_support::meta::run(&store, "mem").await;
}
