//! Benchmarks of the subject trie, named after their case as in nats-server's
//! `server/sublist_test.go`, each with the match cache on and off where it applies.
//!
//! Two tries are measured:
//!
//! * **sublist**: nats-server's own benchmark set — every subject of 1 to 5 tokens over 8 tokens
//!   (37 448 literal subscriptions) plus `cloud.>`, `cloud.nats.component.>` and
//!   `cloud.*.*.nkeys.*` — for the 1-to-5-token, wildcard-hit and miss-on-last-token cases.
//! * **prices**: 100 000 subscriptions of 1 000 connections, a market-data mix
//!   (see [`PricesMix`]): 90 000 literal `PRICES.<exchange>.<symbol>`, 4 500 `PRICES.*.<symbol>`
//!   and 5 500 `ORDERS.<desk>.>`.
//!
//! Before the benchmarks, the binary prints the memory the tries take (a counting allocator, on
//! only while building them, and the process's resident set).
//!
//! Run: `cargo bench -p mm-gateway --bench subject_trie`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BatchSize, BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use mm_gateway::subject_trie::SubjectTrie;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The gateway's subscription key: (connection slot, subscription id).
type Key = (u32, u32);

// ---------------------------------------------------------------------------------------------
// Memory accounting

/// Counts live heap bytes and allocations while [`COUNTING`] is set; otherwise only forwards to
/// the system allocator (one relaxed load per call).
struct CountingAllocator;

/// Whether allocations are being counted.
static COUNTING: AtomicBool = AtomicBool::new(false);
/// Bytes allocated minus bytes freed while counting.
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);
/// Allocations minus deallocations while counting.
static LIVE_ALLOCATIONS: AtomicIsize = AtomicIsize::new(0);
/// Allocations made while counting.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn count(bytes: isize, allocations: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed);
        LIVE_ALLOCATIONS.fetch_add(allocations, Ordering::Relaxed);
        if allocations > 0 {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees are this allocator's; the counting touches only atomics and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(signed(layout.size()), 1);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(signed(layout.size()), 1);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        count(-signed(layout.size()), -1);
        // SAFETY: `pointer` came from this allocator, hence from `System`, with `layout`.
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(signed(new_size) - signed(layout.size()), 0);
        // SAFETY: `pointer` came from `System` with `layout`; the caller upholds the rest.
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Resident set size of this process, in bytes (Linux; 0 elsewhere).
fn resident_bytes() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// What building something cost in memory.
struct Footprint {
    /// Heap bytes requested and still live.
    live_bytes: isize,
    /// Allocations still live.
    live_allocations: isize,
    /// Growth of the resident set (includes allocator overhead and fragmentation).
    resident_bytes: isize,
    /// Time taken.
    elapsed: Duration,
}

/// Runs `build` with the counting allocator on and returns what it built plus its footprint.
fn measure<R>(build: impl FnOnce() -> R) -> (R, Footprint) {
    let resident_before = resident_bytes();
    LIVE_BYTES.store(0, Ordering::Relaxed);
    LIVE_ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let built = build();
    let elapsed = start.elapsed();
    COUNTING.store(false, Ordering::Relaxed);
    let footprint = Footprint {
        live_bytes: LIVE_BYTES.load(Ordering::Relaxed),
        live_allocations: LIVE_ALLOCATIONS.load(Ordering::Relaxed),
        resident_bytes: signed(resident_bytes()) - signed(resident_before),
        elapsed,
    };
    (built, footprint)
}

fn report_footprint(label: &str, subscriptions: usize, footprint: &Footprint) {
    let per = |bytes: isize| bytes as f64 / subscriptions as f64;
    eprintln!(
        "memory {label}: {subscriptions} subscriptions: heap {:.1} MiB live = {:.1} B/subscription \
         in {:.2} allocations/subscription; RSS +{:.1} MiB = {:.1} B/subscription (meaningful for \
         the first line only: later builds reuse freed memory); built in {:.0} ms",
        footprint.live_bytes as f64 / 1048576.0,
        per(footprint.live_bytes),
        per(footprint.live_allocations),
        footprint.resident_bytes as f64 / 1048576.0,
        per(footprint.resident_bytes),
        footprint.elapsed.as_secs_f64() * 1000.0,
    );
}

fn report_memory() {
    // Build the inputs first, uncounted.
    let million = PricesMix::scaled(10).subscriptions();
    let hundred_thousand = PricesMix::scaled(1).subscriptions();
    let one_subject: Vec<Key> = (0..1_000_000).map(|index| (index, 1)).collect();

    let (trie, footprint) = measure(|| build(&million, SubjectTrie::new()));
    report_footprint("prices_1m", million.len(), &footprint);
    eprintln!("  nodes: {}", trie.node_count());
    drop(trie);

    let (trie, footprint) = measure(|| build(&hundred_thousand, SubjectTrie::new()));
    report_footprint("prices_100k", hundred_thousand.len(), &footprint);
    eprintln!("  nodes: {}", trie.node_count());
    drop(trie);

    let (trie, footprint) = measure(|| {
        let mut trie = SubjectTrie::new();
        for key in &one_subject {
            trie.insert(b"foo", *key);
        }
        trie
    });
    report_footprint("one_subject_1m_values", one_subject.len(), &footprint);
    drop(trie);

    // A full cache of short results: what the cache adds on top of the trie.
    let mut trie = build(&hundred_thousand, SubjectTrie::new());
    let subjects = PricesMix::scaled(1).publish_subjects(4096, Traffic::Uniform, 1);
    let ((), footprint) = measure(|| {
        for subject in &subjects {
            black_box(trie.matches(subject));
        }
    });
    eprintln!(
        "memory full match cache: {} entries, heap {:.1} KiB live",
        trie.cache_stats().map_or(0, |stats| stats.entries),
        footprint.live_bytes as f64 / 1024.0
    );
}

// ---------------------------------------------------------------------------------------------
// Workloads

/// The nats-server benchmark tokens.
const SUBLIST_TOKENS: [&str; 8] = [
    "synadia",
    "nats",
    "jetstream",
    "nkeys",
    "jwt",
    "deny",
    "auth",
    "drain",
];

/// nats-server's benchmark subscriptions: every subject of 1 to 5 tokens over [`SUBLIST_TOKENS`],
/// then three wildcards.
fn sublist_subscriptions() -> Vec<(Vec<u8>, Key)> {
    fn extend(prefix: &str, depth: usize, out: &mut Vec<String>) {
        for token in SUBLIST_TOKENS {
            let subject = if prefix.is_empty() {
                token.to_string()
            } else {
                format!("{prefix}.{token}")
            };
            out.push(subject.clone());
            if depth < 5 {
                extend(&subject, depth + 1, out);
            }
        }
    }
    let mut patterns = Vec::new();
    extend("", 1, &mut patterns);
    patterns.extend(["cloud.>", "cloud.nats.component.>", "cloud.*.*.nkeys.*"].map(str::to_string));
    (0u32..)
        .zip(patterns)
        .map(|(index, pattern)| (pattern.into_bytes(), (index % 1000, index / 1000 + 1)))
        .collect()
}

/// The market-data mix, `scale` × 100 000 subscriptions from `scale` × 1 000 connections:
///
/// * 90 % literal `PRICES.<exchange>.<symbol>` (10 exchanges × `scale` × 9 000 symbols);
/// * 4.5 % `PRICES.*.<symbol>` (every even symbol: consolidated feeds);
/// * 5.5 % `ORDERS.<desk>.>` (`scale` × 5 500 desks).
///
/// A publish to `PRICES.<exchange>.<symbol>` therefore matches 1 or 2 subscriptions.
struct PricesMix {
    /// Symbols per exchange.
    symbols: u32,
    /// Desks.
    desks: u32,
    /// Connections.
    connections: u32,
}

const EXCHANGES: [&str; 10] = [
    "NYSE", "NASDAQ", "LSE", "XETRA", "EURONEXT", "TSE", "HKEX", "SSE", "ASX", "TSX",
];

/// Which subjects a benchmark publishes to.
#[derive(Clone, Copy)]
enum Traffic {
    /// Drawn from every subject of the mix: the working set (≈ 100 000 subjects) is far larger
    /// than the match cache.
    Uniform,
    /// 512 subjects drawn once from the mix and published to in turn: the working set fits in the
    /// match cache.
    Hot,
    /// 100 000 subjects drawn once from the mix, published to with Zipf (s = 1) popularity, as
    /// market data is: the 1 024 most popular take ~60 % of the publishes.
    Zipf,
}

impl PricesMix {
    fn scaled(scale: u32) -> PricesMix {
        PricesMix {
            symbols: 9_000 * scale,
            desks: 5_500 * scale,
            connections: 1_000 * scale,
        }
    }

    /// The subscriptions, in an order that interleaves the kinds (as clients would arrive).
    fn subscriptions(&self) -> Vec<(Vec<u8>, Key)> {
        let mut patterns = Vec::new();
        for symbol in 0..self.symbols {
            for exchange in EXCHANGES {
                patterns.push(format!("PRICES.{exchange}.S{symbol}"));
            }
            if symbol % 2 == 0 {
                patterns.push(format!("PRICES.*.S{symbol}"));
            }
        }
        for desk in 0..self.desks {
            patterns.push(format!("ORDERS.D{desk}.>"));
        }
        let mut rng = StdRng::seed_from_u64(1);
        patterns.shuffle(&mut rng);
        let connections = self.connections;
        (0u32..)
            .zip(patterns)
            .map(|(index, pattern)| {
                (
                    pattern.into_bytes(),
                    (index % connections, index / connections + 1),
                )
            })
            .collect()
    }

    /// `count` subjects to publish to: 80 % `PRICES` hits (1 or 2 matches), 10 % `ORDERS`
    /// wildcard hits (1 match), 10 % `PRICES` misses on the last token (0 matches).
    fn publish_subjects(&self, count: usize, traffic: Traffic, seed: u64) -> Vec<Vec<u8>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let draw = |rng: &mut StdRng| -> Vec<u8> {
            let exchange = EXCHANGES[rng.gen_range(0..EXCHANGES.len())];
            match rng.gen_range(0..10) {
                0 => format!(
                    "ORDERS.D{}.{}",
                    rng.gen_range(0..self.desks),
                    rng.gen_range(0..100)
                ),
                1 => format!("PRICES.{exchange}.X{}", rng.gen_range(0..self.symbols)),
                _ => format!("PRICES.{exchange}.S{}", rng.gen_range(0..self.symbols)),
            }
            .into_bytes()
        };
        match traffic {
            Traffic::Uniform => (0..count).map(|_| draw(&mut rng)).collect(),
            Traffic::Hot => {
                let hot: Vec<Vec<u8>> = (0..512).map(|_| draw(&mut rng)).collect();
                hot.iter().cycle().take(count).cloned().collect()
            }
            Traffic::Zipf => {
                let universe: Vec<Vec<u8>> = (0..100_000).map(|_| draw(&mut rng)).collect();
                let mut cumulative = Vec::with_capacity(universe.len());
                let mut total = 0.0;
                for rank in 0..universe.len() {
                    total += 1.0 / (rank as f64 + 1.0);
                    cumulative.push(total);
                }
                (0..count)
                    .map(|_| {
                        let target = rng.r#gen::<f64>() * total;
                        let rank = cumulative.partition_point(|&weight| weight < target);
                        universe[rank.min(universe.len() - 1)].clone()
                    })
                    .collect()
            }
        }
    }
}

fn build(subscriptions: &[(Vec<u8>, Key)], mut trie: SubjectTrie<Key>) -> SubjectTrie<Key> {
    for (pattern, key) in subscriptions {
        trie.insert(pattern, *key);
    }
    trie
}

/// The constructor of an empty trie in one cache mode.
type NewTrie = fn() -> SubjectTrie<Key>;

/// Both cache modes, with the name criterion reports them under.
const MODES: [(&str, NewTrie); 2] = [
    ("cache_on", SubjectTrie::new),
    ("cache_off", SubjectTrie::without_cache),
];

// ---------------------------------------------------------------------------------------------
// Benchmarks

/// nats-server: `SublistInsert`. Building the 100 000-subscription mix from empty.
fn insert(criterion: &mut Criterion) {
    let subscriptions = PricesMix::scaled(1).subscriptions();
    let mut group = criterion.benchmark_group("insert_100k");
    group.throughput(Throughput::Elements(subscriptions.len() as u64));
    group.sample_size(20);
    for (mode, new_trie) in MODES {
        group.bench_function(mode, |bencher| {
            bencher.iter_batched(
                new_trie,
                |trie| build(&subscriptions, trie),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// One match per iteration, of `subjects` in turn.
fn bench_matches(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    trie: &mut SubjectTrie<Key>,
    subjects: &[Vec<u8>],
) {
    group.bench_function(name, |bencher| {
        let mut next = 0;
        bencher.iter(|| {
            let subject = &subjects[next];
            next = (next + 1) % subjects.len();
            black_box(trie.matches(black_box(subject)).len())
        });
    });
}

/// Prints the cache hit rate of a benchmark that ran (criterion's filter may have skipped it).
fn report_hit_rate(name: &str, trie: &SubjectTrie<Key>) {
    if let Some(stats) = trie.cache_stats() {
        let lookups = stats.hits + stats.misses;
        if lookups > 0 {
            eprintln!(
                "  {name}: cache hit rate {:.1} % over {lookups} lookups",
                100.0 * stats.hits as f64 / lookups as f64
            );
        }
    }
}

/// nats-server: `SublistMatchSingleToken` … `SublistMatchFiveTokens`,
/// `SublistMatchFourTokensMultiResults` (wildcard hits) and `SublistMissOnLastTokenOfFiveTokens`.
fn match_sublist(criterion: &mut Criterion) {
    let subscriptions = sublist_subscriptions();
    let cases: [(&str, &str); 7] = [
        ("match_single_token", "synadia"),
        ("match_two_tokens", "synadia.nats"),
        ("match_three_tokens", "synadia.nats.jetstream"),
        ("match_four_tokens", "synadia.nats.jetstream.nkeys"),
        ("match_five_tokens", "synadia.nats.jetstream.nkeys.jwt"),
        (
            "match_four_tokens_wildcard_hits",
            "cloud.nats.component.nkeys",
        ),
        (
            "miss_on_last_token_of_five_tokens",
            "synadia.nats.jetstream.nkeys.unknown",
        ),
    ];
    for (case, subject) in cases {
        let mut group = criterion.benchmark_group(format!("sublist/{case}"));
        group.throughput(Throughput::Elements(1));
        for (mode, new_trie) in MODES {
            let mut trie = build(&subscriptions, new_trie());
            bench_matches(&mut group, mode, &mut trie, &[subject.as_bytes().to_vec()]);
        }
        group.finish();
    }
}

/// The headline: matches per second on the 100 000-subscription mix, cache on and off, with the
/// working set far larger than the cache (`uniform`), skewed (`zipf`), and within it (`hot`).
fn match_prices(criterion: &mut Criterion) {
    let mix = PricesMix::scaled(1);
    let subscriptions = mix.subscriptions();
    let mut group = criterion.benchmark_group("prices_100k/match");
    group.throughput(Throughput::Elements(1));
    for (traffic_name, traffic) in [
        ("uniform", Traffic::Uniform),
        ("zipf", Traffic::Zipf),
        ("hot", Traffic::Hot),
    ] {
        let subjects = mix.publish_subjects(1 << 16, traffic, 2);
        for (mode, new_trie) in MODES {
            let mut trie = build(&subscriptions, new_trie());
            bench_matches(
                &mut group,
                &format!("{traffic_name}/{mode}"),
                &mut trie,
                &subjects,
            );
            report_hit_rate(&format!("{traffic_name}/{mode}"), &trie);
        }
    }
    group.finish();
}

/// Matching the hot set while MM/2 clients come and go: every 100th match, one client's
/// `_INBOX.<random>.*` is subscribed, and the previous one unsubscribed (SPEC §7.4). The inbox
/// patterns invalidate only their own first token's cache group, so the hit rate should hold.
fn match_prices_with_inbox_churn(criterion: &mut Criterion) {
    let mix = PricesMix::scaled(1);
    let subscriptions = mix.subscriptions();
    let subjects = mix.publish_subjects(1 << 16, Traffic::Hot, 2);
    let inboxes: Vec<Vec<u8>> = (0..1024)
        .map(|index| format!("_INBOX.Kq3vX9pLm2RtY7wZa8Bc{index:04}.*").into_bytes())
        .collect();
    let mut group = criterion.benchmark_group("prices_100k/match");
    group.throughput(Throughput::Elements(1));
    for (mode, new_trie) in MODES {
        let mut trie = build(&subscriptions, new_trie());
        let name = format!("hot_with_inbox_churn/{mode}");
        group.bench_function(name.as_str(), |bencher| {
            let mut next = 0;
            bencher.iter(|| {
                if next % 100 == 0 {
                    let client = next / 100 % inboxes.len();
                    trie.insert(&inboxes[client], (u32::MAX, 1));
                    let previous = (client + inboxes.len() - 1) % inboxes.len();
                    trie.remove(&inboxes[previous], (u32::MAX, 1));
                }
                let subject = &subjects[next % subjects.len()];
                next += 1;
                black_box(trie.matches(black_box(subject)).len())
            });
        });
        report_hit_rate(&name, &trie);
    }
    group.finish();
}

/// One subscribe plus one unsubscribe per iteration, on the 100 000-subscription mix with a warm
/// cache: a new subject (creates and frees a leaf), a new subscriber of an existing subject, and a
/// wildcard (invalidates the cache).
fn subscribe_unsubscribe(criterion: &mut Criterion) {
    let mix = PricesMix::scaled(1);
    let subscriptions = mix.subscriptions();
    let hot = mix.publish_subjects(1024, Traffic::Hot, 3);
    let cases: [(&str, Vec<Vec<u8>>); 3] = [
        (
            "literal_new_subject",
            (0..4096)
                .map(|index| format!("PRICES.{}.N{index}", EXCHANGES[index % 10]).into_bytes())
                .collect(),
        ),
        (
            "literal_existing_subject",
            (0..4096)
                .map(|index| format!("PRICES.{}.S{index}", EXCHANGES[index % 10]).into_bytes())
                .collect(),
        ),
        (
            "wildcard",
            (0..4096)
                .map(|index| format!("ORDERS.D{index}.>").into_bytes())
                .collect(),
        ),
    ];
    let mut group = criterion.benchmark_group("prices_100k/subscribe_unsubscribe");
    group.throughput(Throughput::Elements(1));
    for (case, patterns) in &cases {
        for (mode, new_trie) in MODES {
            let mut trie = build(&subscriptions, new_trie());
            for subject in &hot {
                trie.matches(subject);
            }
            group.bench_function(format!("{case}/{mode}"), |bencher| {
                let mut next = 0;
                bencher.iter(|| {
                    let pattern = &patterns[next];
                    next = (next + 1) % patterns.len();
                    let key = (u32::MAX, 1);
                    trie.insert(black_box(pattern), key);
                    black_box(trie.remove(black_box(pattern), key))
                });
            });
        }
    }
    group.finish();
}

/// nats-server: `SublistRemove1TokenSingle` (100 000 subscribers of one subject leave one by one,
/// in random order), `SublistRemove2TokensSingle` (the whole mix, one by one), and the gateway's
/// batch: every subscription of one connection, as when it disconnects.
fn remove(criterion: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(4);
    let mut group = criterion.benchmark_group("remove");
    group.sample_size(20);

    let mut one_subject: Vec<Key> = (0..100_000).map(|index| (index, 1)).collect();
    one_subject.shuffle(&mut rng);
    group.throughput(Throughput::Elements(one_subject.len() as u64));
    for (mode, new_trie) in MODES {
        group.bench_function(format!("one_subject_100k_values/{mode}"), |bencher| {
            bencher.iter_batched(
                || {
                    let mut trie = new_trie();
                    for key in &one_subject {
                        trie.insert(b"foo", *key);
                    }
                    trie
                },
                |mut trie| {
                    for key in &one_subject {
                        trie.remove(b"foo", *key);
                    }
                    trie
                },
                BatchSize::PerIteration,
            );
        });
    }

    let mix = PricesMix::scaled(1);
    let subscriptions = mix.subscriptions();
    let mut shuffled = subscriptions.clone();
    shuffled.shuffle(&mut rng);
    group.throughput(Throughput::Elements(subscriptions.len() as u64));
    for (mode, new_trie) in MODES {
        group.bench_function(format!("prices_100k_single/{mode}"), |bencher| {
            bencher.iter_batched(
                || build(&subscriptions, new_trie()),
                |mut trie| {
                    for (pattern, key) in &shuffled {
                        trie.remove(pattern, *key);
                    }
                    trie
                },
                BatchSize::PerIteration,
            );
        });
    }

    // One connection's 100 subscriptions, removed and (untimed) put back.
    let connection = 7;
    let of_connection: Vec<(Vec<u8>, Key)> = subscriptions
        .iter()
        .filter(|(_, key)| key.0 == connection)
        .cloned()
        .collect();
    group.throughput(Throughput::Elements(of_connection.len() as u64));
    for (mode, new_trie) in MODES {
        let mut trie = build(&subscriptions, new_trie());
        let hot = mix.publish_subjects(1024, Traffic::Hot, 5);
        group.bench_function(
            format!("prices_100k_batch_one_connection/{mode}"),
            |bencher| {
                bencher.iter_custom(|iterations| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iterations {
                        for subject in &hot {
                            trie.matches(subject);
                        }
                        let start = Instant::now();
                        for (pattern, key) in &of_connection {
                            black_box(trie.remove(pattern, *key));
                        }
                        elapsed += start.elapsed();
                        for (pattern, key) in &of_connection {
                            trie.insert(pattern, *key);
                        }
                    }
                    elapsed
                });
            },
        );
    }
    group.finish();
}

/// One million subscriptions of the mix, built from empty.
fn build_1m(criterion: &mut Criterion) {
    let subscriptions = PricesMix::scaled(10).subscriptions();
    let mut group = criterion.benchmark_group("prices_1m");
    group.throughput(Throughput::Elements(subscriptions.len() as u64));
    group.sample_size(10);
    group.bench_function("build", |bencher| {
        bencher.iter_batched(
            SubjectTrie::new,
            |trie| build(&subscriptions, trie),
            BatchSize::PerIteration,
        );
    });
    let mut trie = build(&subscriptions, SubjectTrie::without_cache());
    let subjects = PricesMix::scaled(10).publish_subjects(1 << 16, Traffic::Uniform, 6);
    group.throughput(Throughput::Elements(1));
    bench_matches(&mut group, "match/uniform/cache_off", &mut trie, &subjects);
    group.finish();
}

fn main() {
    report_memory();
    let mut criterion = Criterion::default().configure_from_args();
    insert(&mut criterion);
    match_sublist(&mut criterion);
    match_prices(&mut criterion);
    match_prices_with_inbox_churn(&mut criterion);
    subscribe_unsubscribe(&mut criterion);
    remove(&mut criterion);
    build_1m(&mut criterion);
    criterion.final_summary();
}
