//! `mcp-server-alipay keygen`: an RSA-2048 application key pair in the forms Alipay's console
//! takes: the private key as bare Base64 PKCS#8 (mode 0600), the public key as bare Base64 SPKI.

use std::path::PathBuf;

use alipay_openapi::PrivateKey;

use crate::local::write_secret;

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Directory for app-private-key.txt and app-public-key.txt.
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Replace existing key files.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &KeygenArgs) -> std::process::ExitCode {
    match generate(args) {
        Ok((private, public)) => {
            let message = format!(
                "wrote {} (private key, mode 0600: set AP_APP_KEY to this path or its content)\n\
                 wrote {} (upload its content in the Alipay console as the 应用公钥, 接口加签方式: 公钥 / RSA2)\n\
                 then copy the console's 支付宝公钥 (Alipay public key) into AP_PUB_KEY",
                private.display(),
                public.display()
            );
            // keygen is a CLI command: it prints paths, never the private key.
            println!("{message}"); // stdout-ok
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mcp-server-alipay keygen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn generate(args: &KeygenArgs) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let private = args.out.join("app-private-key.txt");
    let public = args.out.join("app-public-key.txt");
    for path in [&private, &public] {
        if path.exists() {
            if !args.force {
                return Err(format!(
                    "{} exists; use --force to replace it",
                    path.display()
                ));
            }
            std::fs::remove_file(path)
                .map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
        }
    }
    let key = PrivateKey::generate().map_err(|e| e.to_string())?;
    write_secret(&private, &key.to_pkcs8_base64())?;
    std::fs::write(&public, key.public_key().to_spki_base64() + "\n")
        .map_err(|e| format!("cannot write {}: {e}", public.display()))?;
    Ok((private, public))
}
