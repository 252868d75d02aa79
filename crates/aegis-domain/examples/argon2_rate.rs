//! The ceiling for logins: how many Argon2id computations per second this machine does at the
//! service's costs, on as many threads as the service hashes with, with nothing else around them.
//! `scripts/load.sh` compares the login rate against it.
//!
//! ```sh
//! cargo run --release -p aegis-domain --example argon2_rate -- [seconds] [threads] [memory_kib] [iterations]
//! ```
//!
//! Defaults: 10 s, one thread per CPU, m=19456 KiB, t=2 (the service's defaults, p=1). Each
//! thread reuses one block of Argon2 memory, as the service's hashing threads do. Prints
//! `argon2id_per_second <rate>`.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as u64;
    let seconds = arg(1, 10);
    let threads = arg(2, cpus);
    let memory_kib = u32::try_from(arg(3, 19_456)).unwrap_or(19_456);
    let iterations = u32::try_from(arg(4, 2)).unwrap_or(2);
    let Ok(params) = Params::new(memory_kib, iterations, 1, Some(32)) else {
        eprintln!("Argon2 refuses m={memory_kib} KiB, t={iterations}");
        std::process::exit(2);
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|thread| {
            let params = params.clone();
            std::thread::spawn(move || {
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let mut blocks = vec![Block::default(); params.block_count()];
                let salt = [thread as u8; 16];
                let mut out = [0u8; 32];
                let mut done = 0u64;
                while Instant::now() < deadline {
                    if argon2
                        .hash_password_into_with_memory(
                            b"load-password",
                            &salt,
                            &mut out,
                            &mut blocks,
                        )
                        .is_ok()
                    {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    let done: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    let rate = done as f64 / started.elapsed().as_secs_f64();
    println!(
        "argon2id_per_second {rate:.1} (threads {threads}, m={memory_kib} KiB, t={iterations}, p=1)"
    );
}
