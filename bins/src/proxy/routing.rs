//! Policy routing that sends the routed networks into the proxy's TUN device
//! while the proxy's own sockets bypass it, as wg-quick does: a table of
//! our own holds one route per network through the device, and one rule
//! sends every packet *not* carrying our firewall mark to that table. The
//! proxy marks its outgoing sockets (`SO_MARK`), so their packets skip the
//! table and take the main one: they can never loop back into the device.
//! Everything installed is removed when the guard is dropped, on every
//! exit path, in reverse order.

use std::process::Command;

use tracing::{debug, warn};
use ustack_ipv4::Ipv4Subnet;

/// Why the routing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// The `ip` program could not be started.
    #[error("cannot run `ip` ({0}): install iproute2")]
    IpMissing(std::io::Error),
    /// An `ip` command ran and failed.
    #[error("`{cmd}` failed: {msg} (needs CAP_NET_ADMIN: run as root)")]
    Command {
        /// The command line.
        cmd: String,
        /// Its error output.
        msg: String,
    },
    /// The table already has routes, or a rule already uses the table or
    /// our priority: installing would disturb someone else's routing.
    #[error("routing table {table} is in use already ({what}); choose another with --table")]
    TableInUse {
        /// The routing table number asked for.
        table: u32,
        /// The routes or the rule found.
        what: String,
    },
}

/// What to install.
#[derive(Debug, Clone)]
pub struct RoutingPlan {
    /// The TUN device the networks are routed into.
    pub device: String,
    /// Source address of connections into the device (its host side).
    pub src: std::net::Ipv4Addr,
    /// The networks, as network addresses (host bits clear).
    pub routes: Vec<Ipv4Subnet>,
    /// Firewall mark of the proxy's own sockets.
    pub mark: u32,
    /// Routing table of the routes.
    pub table: u32,
    /// Priority of the rule (below main's 32766).
    pub priority: u32,
}

/// Installed rules and routes; removed on drop.
#[derive(Debug)]
pub struct PolicyRouting {
    plan: RoutingPlan,
    /// Routes added so far, in order.
    routes: Vec<Ipv4Subnet>,
    rule: bool,
}

impl PolicyRouting {
    /// Checks that the table and rule priority are free, so that cleaning up
    /// can never remove what someone else installed. Creates nothing.
    pub fn check(plan: &RoutingPlan) -> Result<(), RoutingError> {
        let table = plan.table.to_string();
        let routes = match ip(&["-4", "route", "show", "table", &table]) {
            Ok(r) => r,
            // Newer iproute2 says so of a table that has never had a route.
            Err(RoutingError::Command { msg, .. }) if msg.contains("does not exist") => {
                String::new()
            }
            Err(e) => return Err(e),
        };
        if !routes.trim().is_empty() {
            return Err(RoutingError::TableInUse {
                table: plan.table,
                what: format!("it has routes: {}", routes.trim().replace('\n', "; ")),
            });
        }
        let rules = ip(&["-4", "rule", "show"])?;
        let prio = format!("{}:", plan.priority);
        let lookup = format!("lookup {table} ");
        if let Some(r) = rules
            .lines()
            .find(|l| l.starts_with(&prio) || format!("{l} ").contains(&lookup))
        {
            return Err(RoutingError::TableInUse {
                table: plan.table,
                what: format!("rule {r:?}, priority {}", plan.priority),
            });
        }
        Ok(())
    }

    /// Adds the routes, then the rule. On failure, what was added is
    /// removed again before the error returns.
    pub fn install(plan: &RoutingPlan) -> Result<PolicyRouting, RoutingError> {
        let mut guard = PolicyRouting {
            plan: plan.clone(),
            routes: Vec::new(),
            rule: false,
        };
        let table = plan.table.to_string();
        let src = plan.src.to_string();
        for net in &plan.routes {
            let net_s = net.to_string();
            ip(&[
                "-4",
                "route",
                "add",
                &net_s,
                "dev",
                &plan.device,
                "src",
                &src,
                "table",
                &table,
            ])?;
            guard.routes.push(*net);
        }
        let mark = format!("{:#x}", plan.mark);
        let prio = plan.priority.to_string();
        ip(&[
            "-4", "rule", "add", "not", "fwmark", &mark, "table", &table, "priority", &prio,
        ])?;
        guard.rule = true;
        debug!(?plan, "policy routing installed");
        Ok(guard)
    }
}

impl Drop for PolicyRouting {
    fn drop(&mut self) {
        let table = self.plan.table.to_string();
        if self.rule {
            let mark = format!("{:#x}", self.plan.mark);
            let prio = self.plan.priority.to_string();
            if let Err(e) = ip(&[
                "-4", "rule", "del", "not", "fwmark", &mark, "table", &table, "priority", &prio,
            ]) {
                warn!(%e, "could not remove the routing rule");
            }
        }
        for net in self.routes.drain(..).rev() {
            let net_s = net.to_string();
            let dev = &self.plan.device;
            if let Err(e) = ip(&["-4", "route", "del", &net_s, "dev", dev, "table", &table]) {
                // Gone with the device already is fine; say anything else.
                warn!(%e, "could not remove a route");
            }
        }
        debug!("policy routing removed");
    }
}

fn ip(args: &[&str]) -> Result<String, RoutingError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(RoutingError::IpMissing)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(RoutingError::Command {
            cmd: format!("ip {}", args.join(" ")),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
