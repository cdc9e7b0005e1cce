//! The REST commands (`agents`, `contexts`, `keys`, `users`,
//! `stream-token`), each one call of the SDK's `AdminClient`.

use std::io::BufRead;

use serde_json::{json, Map, Value};
use tokenrelay::rest::{Credentials, GenerateApiKeyRequest, KeyType, NewAgent, NewContext};
use tokenrelay::Error;

use crate::args::{
    AgentsCommand, ContextsCommand, KeyKind, KeysCommand, UserKeysCommand, UsersCommand,
};
use crate::config::Settings;
use crate::output::{print, rows};

/// `tokenrelay agents …`
pub(crate) async fn agents(
    settings: &Settings,
    json: bool,
    command: AgentsCommand,
) -> Result<(), Error> {
    let admin = settings.admin()?;
    match command {
        AgentsCommand::Create {
            name,
            description,
            prompt,
            public,
            speaks_first,
        } => {
            let mut agent = NewAgent::new(name, description, prompt);
            agent.is_public = public;
            agent.agent_speaks_first = Some(speaks_first);
            let agent = admin.create_agent(&agent).await?;
            print(json, &agent, |a| a.agent_id.clone());
        }
        AgentsCommand::List => {
            let agents = admin.list_agents().await?;
            print(json, &agents, |agents| {
                agents
                    .iter()
                    .map(|a| {
                        let public = if a.is_public { "  (public)" } else { "" };
                        format!("{}  {}{public}", a.agent_id, a.agent_name)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        AgentsCommand::Show { id } => {
            let agent = admin.get_agent(&id).await?;
            print(json, &agent, |a| {
                rows(&[
                    ("id", a.agent_id.clone()),
                    ("name", a.agent_name.clone()),
                    ("description", a.agent_description.clone()),
                    ("prompt", a.prompt.clone()),
                    ("public", a.is_public.to_string()),
                    ("speaks first", a.agent_speaks_first.to_string()),
                    ("tools", a.tools.len().to_string()),
                ])
            });
        }
        AgentsCommand::Delete { id } => {
            admin.delete_agent(&id).await?;
            print(json, &json!({"success": true}), |_| String::new());
        }
    }
    Ok(())
}

/// `tokenrelay contexts …`
pub(crate) async fn contexts(
    settings: &Settings,
    json: bool,
    command: ContextsCommand,
) -> Result<(), Error> {
    let admin = settings.admin()?;
    match command {
        ContextsCommand::Create {
            agent,
            args,
            invoke,
        } => {
            let mut context = NewContext::new(agent);
            if !args.is_empty() {
                let args: Map<String, Value> = args
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect();
                context.prompt_args = Some(args);
            }
            context.invoke_agent_message = invoke.then_some(true);
            let context = admin.create_context(&context).await?;
            print(json, &context, |c| c.context_id.clone());
        }
        ContextsCommand::Show { id } => {
            let context = admin.get_context(&id).await?;
            print(json, &context, |c| {
                let mut text = rows(&[
                    ("id", c.context_id.clone()),
                    ("agent", c.agent_id.clone()),
                    ("messages", c.messages.len().to_string()),
                ]);
                for message in &c.messages {
                    text.push('\n');
                    text.push_str(&crate::output::history_line(message));
                }
                text
            });
        }
        ContextsCommand::Delete { id } => {
            admin.delete_context(&id).await?;
            print(json, &json!({"success": true}), |_| String::new());
        }
    }
    Ok(())
}

/// `tokenrelay keys …`
pub(crate) async fn keys(
    settings: &Settings,
    json: bool,
    command: KeysCommand,
) -> Result<(), Error> {
    let admin = settings.admin()?;
    match command {
        KeysCommand::Mint {
            context,
            ttl,
            org_key,
        } => {
            let org_id = settings.org_id(&admin).await?;
            let mut request = if org_key {
                GenerateApiKeyRequest::org(org_id)
            } else {
                let mut request = GenerateApiKeyRequest::client(org_id);
                request.context_id = context;
                request
            };
            request.ttl_seconds = ttl;
            let key = admin.generate_api_key(&request).await?;
            print(json, &key, |k| k.token.clone());
        }
        KeysCommand::List { kind, limit } => {
            let kind = match kind {
                KeyKind::Org => KeyType::Org,
                KeyKind::Client => KeyType::Client,
            };
            let keys = admin.list_api_keys(kind, limit).await?;
            print(json, &keys, |keys| {
                keys.iter()
                    .map(|k| {
                        let scope = k.context_id.as_deref().unwrap_or("-");
                        let valid = if k.valid { "valid" } else { "revoked" };
                        let expires = k.expires_at.map_or("never".to_owned(), |t| t.to_string());
                        format!(
                            "{}  {valid}  context {scope}  expires {expires}",
                            k.api_key_id
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeysCommand::Revoke { id } => {
            let revoked = admin.revoke_api_key(&id).await?;
            print(json, &revoked, |r| {
                format!("revoked, with {} key(s) it had minted", r.revoked_minted)
            });
        }
    }
    Ok(())
}

/// `tokenrelay users …`
pub(crate) async fn users(
    settings: &Settings,
    json: bool,
    command: UsersCommand,
) -> Result<(), Error> {
    match command {
        UsersCommand::Register { username } => {
            let credentials = Credentials::new(username, password()?);
            let user = settings.anonymous()?.register(&credentials).await?;
            print(json, &user, |u| u.id.clone());
        }
        UsersCommand::Login { username } => {
            let credentials = Credentials::new(username, password()?);
            let login = settings.anonymous()?.login(&credentials).await?;
            print(json, &login, |l| l.access_token.clone());
        }
        UsersCommand::Me => {
            let user = settings.admin()?.me().await?;
            print(json, &user, |u| {
                rows(&[
                    ("id", u.id.clone()),
                    ("username", u.username.clone()),
                    ("org", u.org_id.clone().unwrap_or_default()),
                ])
            });
        }
        UsersCommand::Keys(command) => {
            let admin = settings.admin()?;
            match command {
                UserKeysCommand::Create { nickname } => {
                    let key = admin.create_user_api_key(&nickname).await?;
                    print(json, &key, |k| k.key.clone());
                }
                UserKeysCommand::List => {
                    let keys = admin.list_user_api_keys().await?;
                    print(json, &keys, |keys| {
                        keys.iter()
                            .map(|k| format!("{}  {}  created {}", k.id, k.nickname, k.created_at))
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
                }
                UserKeysCommand::Delete { id } => {
                    admin.delete_user_api_key(&id).await?;
                    print(json, &json!({"success": true}), |_| String::new());
                }
            }
        }
    }
    Ok(())
}

/// `tokenrelay stream-token`
pub(crate) async fn stream_token(settings: &Settings, json: bool, ttl: u32) -> Result<(), Error> {
    let token = settings.admin()?.stream_token(Some(ttl)).await?;
    let value = json!({"token": token.token, "ttl": token.ttl});
    print(json, &value, |v| {
        v["token"].as_str().unwrap_or_default().to_owned()
    });
    Ok(())
}

/// The password: `TOKENRELAY_PASSWORD`, else stdin's first line. Never a
/// flag, which would show in the process list and the shell's history.
fn password() -> Result<String, Error> {
    if let Ok(p) = std::env::var("TOKENRELAY_PASSWORD") {
        if !p.is_empty() {
            return Ok(p);
        }
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Config {
            message: format!("cannot read the password from stdin: {e}"),
        })?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(Error::Config {
            message: "no password: set TOKENRELAY_PASSWORD or give it on stdin".into(),
        });
    }
    Ok(password)
}
