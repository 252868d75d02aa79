//! An existing actix-web application that mounts Aegis under `/auth`, next to its own routes:
//! `POST /auth/api/auth/login` and the rest of the Aegis API, and `GET /hello` of its own.
//!
//! `DATABASE_URL=postgres://… SECRET_KEY=… MASTER_API_KEY=… cargo run -p aegis-http --example mounted`

use actix_web::{App, HttpServer, web};
use aegis_http::config::Settings;
use aegis_http::embed::Aegis;

async fn hello() -> &'static str {
    "hello from the host application\n"
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The same variables the `aegis` binary reads, from the environment and `.env`.
    let _ = dotenvy::dotenv();
    let settings = Settings::from_env()?;
    let aegis = Aegis::start(&settings).await?;
    let workers = aegis.spawn_workers()?;
    let mount = aegis.configure("/auth");
    let server = HttpServer::new(move || {
        App::new()
            .route("/hello", web::get().to(hello))
            .configure(mount.clone())
    })
    .bind(("127.0.0.1", 8080))?
    .run();
    println!("listening on http://127.0.0.1:8080 (Aegis under /auth)");
    server.await?;
    workers.stop().await;
    Ok(())
}
