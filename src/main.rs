//! Starts the service; everything else lives in the library.

#[rocket::launch]
fn launch() -> _ {
    auth_service::rocket()
}
