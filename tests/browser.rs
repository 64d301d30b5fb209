//! The pages in a real browser: headless Chromium driven through chromedriver (WebDriver) against
//! the service listening on a free local port, over a fresh database at bcrypt cost 4.
//!
//! Each test starts its own service, chromedriver and browser profile, and stops them all at the
//! end, also when it fails. The tests need the `chromium` and `chromium-driver` packages, which
//! `scripts/test` installs; without them they fail and say so. The same run saves a screenshot
//! of every page at 1280 and 375 px wide into `docs/screenshots/`.

mod common;

use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use auth_service::error::{ApiResult, Error};
use common::{test_figment, TestDatabase};
use rocket::tokio;
use tempfile::TempDir;
use thirtyfour::prelude::*;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const MISSING: &str =
    "is missing: run scripts/test, which installs the chromium and chromium-driver packages";

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "b4l0u-first";
const NEW_PASSWORD: &str = "t4rt1fl3tt3-second";

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free local port");
    listener.local_addr().expect("its address").port()
}

/// Waits until something accepts connections on `port`.
fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// chromedriver in its own process group; dropping it ends the group, browsers included.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    fn start() -> Self {
        for program in [CHROMEDRIVER, CHROMIUM] {
            assert!(Path::new(program).exists(), "{program} {MISSING}");
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} did not start ({e}); run scripts/test"));
        let driver = ChromeDriver { child, port };
        wait_for_port(port, "chromedriver");
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group id is chromedriver's own pid; the browsers it started are in the group too.
        let group = format!("-{}", self.child.id());
        for signal in ["-TERM", "-KILL"] {
            let _ = Command::new("kill").args([signal, "--", &group]).stderr(Stdio::null()).status();
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.wait();
    }
}

#[rocket::get("/boom")]
fn boom() -> ApiResult<()> {
    Err(Error::Internal("a failure for the 500 page".into()))
}

/// The browser and the service it talks to, as a test body sees them.
#[derive(Clone)]
struct Browser {
    driver: WebDriver,
    base: String,
    /// The `mail_outbox` directory of this service.
    outbox: PathBuf,
}

impl Browser {
    async fn open(&self, path: &str) -> WebDriverResult<()> {
        self.driver.goto(format!("{}{path}", self.base)).await
    }

    /// The path and query of the current page.
    async fn path(&self) -> WebDriverResult<String> {
        let url = self.driver.current_url().await?;
        Ok(match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        })
    }

    /// The visible text of the first element `css` selects, with its white space collapsed.
    async fn text(&self, css: &str) -> WebDriverResult<String> {
        let text = self.driver.find(By::Css(css)).await?.text().await?;
        Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    async fn fill(&self, id: &str, value: &str) -> WebDriverResult<()> {
        let input = self.driver.find(By::Id(id)).await?;
        input.clear().await?;
        input.send_keys(value).await
    }

    /// Clicks the submit button of the form whose action is `action`, and waits for the next page.
    async fn submit(&self, action: &str) -> WebDriverResult<()> {
        self.click(&format!(r#"form[action="{action}"] button[type="submit"]"#)).await
    }

    /// Clicks the element `css` selects, and waits until the page it leads to has replaced this one.
    async fn click(&self, css: &str) -> WebDriverResult<()> {
        let page = self.driver.find(By::Css("html")).await?;
        self.driver.find(By::Css(css)).await?.click().await?;
        page.wait_until().stale().await
    }

    /// Types `keys` then Enter, which submits the form, and waits for the next page.
    async fn type_and_submit(&self, keys: &str) -> WebDriverResult<()> {
        let page = self.driver.find(By::Css("html")).await?;
        self.type_keys(keys + Key::Enter).await?;
        page.wait_until().stale().await
    }

    /// Presses Tab until the element with `id` has the focus, as a keyboard user would.
    async fn tab_to(&self, id: &str) -> WebDriverResult<()> {
        for _ in 0..20 {
            if self.driver.active_element().await?.id().await?.as_deref() == Some(id) {
                return Ok(());
            }
            self.type_keys(Key::Tab).await?;
        }
        panic!("#{id} cannot be reached with the Tab key");
    }

    /// Types on the keyboard, into whatever has the focus.
    async fn type_keys(&self, keys: impl Into<TypingData>) -> WebDriverResult<()> {
        self.driver.action_chain().send_keys(keys).perform().await
    }

    /// Runs a script in the page.
    async fn script(&self, script: &str) -> WebDriverResult<serde_json::Value> {
        let result = self.driver.execute(script, Vec::<serde_json::Value>::new()).await?;
        result.convert()
    }

    /// Fills the login form on this page with [`EMAIL`] and `password`, and submits it.
    async fn log_in(&self, password: &str) -> WebDriverResult<()> {
        self.fill("email", EMAIL).await?;
        self.fill("password", password).await?;
        self.submit("/login").await
    }

    /// Registers [`EMAIL`] with [`PASSWORD`] through the page, then logs out.
    async fn register_and_log_out(&self) -> WebDriverResult<()> {
        self.open("/register").await?;
        self.fill("email", EMAIL).await?;
        self.fill("password", PASSWORD).await?;
        self.submit("/register").await?;
        self.submit("/logout").await
    }

    /// The reset link of the one mail in the outbox, decoded from its quoted-printable text.
    fn mailed_reset_link(&self) -> String {
        let mails: Vec<PathBuf> = std::fs::read_dir(&self.outbox)
            .expect("the mail outbox")
            .map(|entry| entry.expect("an outbox entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "eml"))
            .collect();
        assert_eq!(mails.len(), 1, "one mail in the outbox: {mails:?}");
        let raw = std::fs::read_to_string(&mails[0]).expect("a readable mail");
        let decoded = quoted_printable::decode(&raw, quoted_printable::ParseMode::Robust).expect("a mail");
        let text = String::from_utf8(decoded).expect("a UTF-8 mail");
        let start = format!("{}/password/reset?token=", self.base);
        let at = text.find(&start).unwrap_or_else(|| panic!("a link starting {start} in {text}"));
        let end = text[at..].find(|c: char| c.is_whitespace() || c == '"').map_or(text.len(), |n| at + n);
        text[at..end].to_owned()
    }

    /// Saves `docs/screenshots/<name>-1280.png` and `<name>-375.png`, each the whole page.
    async fn snap(&self, name: &str) -> WebDriverResult<()> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        for width in [1280u32, 375] {
            self.driver.set_window_rect(0, 0, width, 800).await?;
            // The window is taller than the page's viewport by the browser's own frame.
            let script = "return Math.ceil(document.documentElement.scrollHeight) \
                          + window.outerHeight - window.innerHeight;";
            let height = self.script(script).await?.as_u64().and_then(|h| u32::try_from(h).ok());
            self.driver.set_window_rect(0, 0, width, height.unwrap_or(800)).await?;
            self.driver.screenshot(&dir.join(format!("{name}-{width}.png"))).await?;
        }
        self.driver.set_window_rect(0, 0, 1280, 800).await
    }
}

/// Runs `body` against a fresh service and browser, and stops everything afterwards, whether
/// `body` passed, failed or panicked.
fn run<F, Fut>(body: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: Future<Output = WebDriverResult<()>>,
{
    let chromedriver = ChromeDriver::start();
    let database = TestDatabase::new();
    let outbox = TempDir::new().expect("a mail outbox directory");
    let profile = TempDir::new().expect("a browser profile directory");
    let port = free_port();
    // Every request comes from 127.0.0.1 here, so the per-IP limit (tests/rate_limit.rs) is off.
    let figment = test_figment(&database)
        .merge(("address", "127.0.0.1"))
        .merge(("port", port))
        .merge(("ip_limit_per_minute", 0))
        .merge(("public_url", format!("http://127.0.0.1:{port}")))
        .merge(("mail_outbox", outbox.path().to_string_lossy().into_owned()));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let rocket = auth_service::build(figment)
            .mount("/test", rocket::routes![boom])
            .ignite()
            .await
            .expect("the service ignites");
        let shutdown = rocket.shutdown();
        let server = tokio::spawn(rocket.launch());
        tokio::task::spawn_blocking(move || wait_for_port(port, "the service")).await.expect("waited");

        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM).expect("a capability");
        let user_data_dir = format!("--user-data-dir={}", profile.path().display());
        for arg in [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1280,800",
            "--lang=en-GB",
            &user_data_dir,
        ] {
            caps.add_arg(arg).expect("a capability");
        }
        let driver = WebDriver::new(chromedriver.url(), caps).await.expect("a browser session");
        let browser = Browser {
            driver: driver.clone(),
            base: format!("http://127.0.0.1:{port}"),
            outbox: outbox.path().to_owned(),
        };
        let outcome = driver.run_and_quit(|_| body(browser)).await;
        shutdown.notify();
        let _ = server.await;
        if let Err(error) = outcome {
            panic!("browser test failed: {error}");
        }
    });
    drop(runtime);
    drop(chromedriver);
}

#[test]
fn register_logout_wrong_password_login_change_password_logout() {
    run(|b| async move {
        b.open("/").await?;
        b.snap("home").await?;
        assert_eq!(b.text("h1").await?, "Bienvenue");
        b.click(r#"main a[href="/register"]"#).await?;
        assert_eq!(b.path().await?, "/register");
        b.snap("register").await?;

        // Register: the account is created and its owner logged in.
        b.fill("email", EMAIL).await?;
        b.fill("password", PASSWORD).await?;
        b.submit("/register").await?;
        assert_eq!(b.path().await?, "/profile");
        assert_eq!(b.text(".flash").await?, "Welcome! Your account is ready.");
        assert_eq!(b.text(".facts dd").await?, EMAIL);
        b.snap("profile").await?;

        // Registering the same email again keeps it in the form and says why, by the field.
        b.submit("/logout").await?;
        assert_eq!(b.path().await?, "/");
        assert_eq!(b.text(".flash").await?, "You have been logged out.");
        b.snap("home-logged-out").await?;
        b.open("/register").await?;
        b.fill("email", EMAIL).await?;
        b.fill("password", "whatever").await?;
        b.submit("/register").await?;
        assert_eq!(
            b.text("#email-error").await?,
            "Error: An account with this email already exists. Log in instead?"
        );
        assert_eq!(b.driver.find(By::Id("email")).await?.value().await?.as_deref(), Some(EMAIL));
        b.snap("register-error").await?;

        // A wrong password, typed with the keyboard only: one neutral message, the email kept.
        b.open("/login").await?;
        b.snap("login").await?;
        b.type_keys(Key::Tab).await?;
        assert_eq!(b.driver.active_element().await?.text().await?, "Skip to main content");
        b.tab_to("email").await?;
        b.type_keys(EMAIL).await?;
        b.tab_to("password").await?;
        b.type_and_submit("wrong password").await?;
        assert_eq!(b.path().await?, "/login");
        assert_eq!(b.text("#login-error").await?, "Wrong email or password.");
        assert_eq!(b.driver.find(By::Id("email")).await?.value().await?.as_deref(), Some(EMAIL));
        assert_eq!(b.driver.active_element().await?.id().await?.as_deref(), Some("password"));
        b.snap("login-error").await?;

        // The right one, still from the keyboard: the focus is already on the password.
        b.type_and_submit(PASSWORD).await?;
        assert_eq!(b.path().await?, "/profile");
        assert_eq!(b.text(".flash").await?, "You are logged in.");

        b.open("/").await?;
        assert!(b.text(".hero__lead").await?.contains(EMAIL));
        b.snap("home-member").await?;

        // Change the password: a wrong current one is refused by the field, then it works.
        b.open("/profile").await?;
        assert!(b.driver.find_all(By::Css(".flash")).await?.is_empty(), "the flash showed once");
        b.fill("current_password", "not it").await?;
        b.fill("new_password", NEW_PASSWORD).await?;
        b.submit("/password/change").await?;
        assert_eq!(b.text("#current_password-error").await?, "Error: Current password is not correct.");
        b.snap("profile-error").await?;
        b.fill("current_password", PASSWORD).await?;
        b.fill("new_password", NEW_PASSWORD).await?;
        b.submit("/password/change").await?;
        assert_eq!(b.path().await?, "/profile");
        assert_eq!(b.text(".flash").await?, "Your password has been changed. Every other session has ended.");
        b.snap("profile-password-changed").await?;

        // Log out, then in with the new password; the old one no longer works.
        b.submit("/logout").await?;
        assert_eq!(b.text(".flash").await?, "You have been logged out.");
        b.open("/login").await?;
        b.log_in(PASSWORD).await?;
        assert_eq!(b.text("#login-error").await?, "Wrong email or password.");
        b.fill("password", NEW_PASSWORD).await?;
        b.submit("/login").await?;
        assert_eq!(b.path().await?, "/profile");
        b.submit("/logout").await?;
        assert_eq!(b.path().await?, "/");
        Ok(())
    });
}

#[test]
fn form_posted_without_its_csrf_token_is_refused() {
    run(|b| async move {
        b.open("/register").await?;
        b.fill("email", EMAIL).await?;
        b.fill("password", PASSWORD).await?;
        b.script(r#"document.querySelector('input[name="csrf_token"]').remove();"#).await?;
        b.submit("/register").await?;
        assert_eq!(b.text("h1").await?, "Access denied");
        assert_eq!(
            b.text(".detail").await?,
            "Invalid CSRF token: reload the page and submit the form again."
        );
        b.snap("error-403").await?;

        // Nothing was created: logging in with those credentials fails.
        b.open("/login").await?;
        b.log_in(PASSWORD).await?;
        assert_eq!(b.text("#login-error").await?, "Wrong email or password.");

        // A token altered in the page is refused as well.
        b.script(r#"document.querySelector('input[name="csrf_token"]').value = 'forged';"#).await?;
        b.submit("/login").await?;
        assert_eq!(b.text("h1").await?, "Access denied");
        Ok(())
    });
}

#[test]
fn logged_out_profile_redirects_to_login_and_comes_back() {
    run(|b| async move {
        b.register_and_log_out().await?;

        b.open("/profile").await?;
        assert_eq!(b.path().await?, "/login?next=/profile");
        assert_eq!(b.text("h1").await?, "Log in");
        b.log_in(PASSWORD).await?;
        assert_eq!(b.path().await?, "/profile");
        assert_eq!(b.text(".flash").await?, "You are logged in.");
        assert_eq!(b.text(".facts dd").await?, EMAIL);
        Ok(())
    });
}

#[test]
fn error_and_reset_pages_render() {
    run(|b| async move {
        b.open("/nowhere").await?;
        assert_eq!(b.text("h1").await?, "Page not found");
        b.snap("error-404").await?;
        b.open("/test/boom").await?;
        assert_eq!(b.text("h1").await?, "Something went wrong");
        b.snap("error-500").await?;
        b.open("/password/reset?token=not-a-token").await?;
        assert_eq!(b.text("h1").await?, "This reset link does not work");
        b.snap("password-reset-invalid").await?;
        Ok(())
    });
}

#[test]
fn forgot_password_mailed_link_sets_a_new_password() {
    run(|b| async move {
        b.register_and_log_out().await?;

        // From the login page to the forgot-password form, which mails a link.
        b.open("/login").await?;
        b.click(r#"a[href="/password/forgot"]"#).await?;
        assert_eq!(b.path().await?, "/password/forgot");
        b.snap("password-forgot").await?;
        b.fill("email", EMAIL).await?;
        b.submit("/password/forgot").await?;
        assert_eq!(
            b.text(".flash").await?,
            "If an account uses that email, a link to choose a new password is on its way. Check your inbox."
        );
        b.snap("password-forgot-sent").await?;

        // The link in the mail opens the new-password form.
        let link = b.mailed_reset_link();
        b.driver.goto(&link).await?;
        assert_eq!(b.text("h1").await?, "Choose a new password");
        b.snap("password-reset").await?;
        b.fill("new_password", NEW_PASSWORD).await?;
        b.submit("/password/reset").await?;
        assert_eq!(b.path().await?, "/login");
        assert_eq!(b.text(".flash").await?, "Your password has been reset. Log in with your new password.");
        b.snap("login-after-reset").await?;

        // The new password logs in, the old one does not, and the link works only once.
        b.log_in(PASSWORD).await?;
        assert_eq!(b.text("#login-error").await?, "Wrong email or password.");
        b.fill("password", NEW_PASSWORD).await?;
        b.submit("/login").await?;
        assert_eq!(b.path().await?, "/profile");
        b.driver.goto(&link).await?;
        assert_eq!(b.text("h1").await?, "This reset link does not work");
        Ok(())
    });
}
