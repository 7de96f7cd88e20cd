//! The official MCP Python SDK (`mcp`, pinned in interop/mcp/requirements.txt) as an ordinary
//! MCP client of `rhizo mcp`: it lists the tools, gets clear error results for bad input,
//! delegates a task end to end to an agent on another node (a worker run by
//! `rhizo agent serve --exec 'tr a-z A-Z'`), waiting for its artifact, and uses every other
//! tool once.
//!
//! ```text
//!  interop/mcp/client.py ──stdio──▶ rhizo mcp ──API──▶ client node ══MLS══▶ worker node
//!                                                                           │ /v1/agent/tasks/next
//!                                                         rhizo agent serve ◀┘ sh -c 'tr a-z A-Z'
//! ```
//!
//! Needs the virtualenv `.ci/run` creates (`$HOME/.cache/rhizo-py/mcp`); without it the test
//! prints `SKIPPED …` and passes, except under `CI=1`, where it fails.

mod agent_common;

use std::process::Command;

use agent_common::{BIN, Net, Program, TIMEOUT, repo_root, serve, skip, venv_python};
use anyhow::ensure;

#[test]
fn the_official_mcp_client_delegates_a_task_through_rhizo_mcp() {
    let python = match venv_python("mcp", "mcp") {
        Ok(p) => p,
        Err(why) => return skip("mcp_interop", &why),
    };
    let net = Net::start("mcp", 1).expect("start the nodes");
    if let Err(e) = scenario(&net, &python) {
        panic!("{e:#}\n{}", net.logs());
    }
}

fn scenario(net: &Net, python: &std::path::Path) -> anyhow::Result<()> {
    net.befriend()?;
    let worker = serve(
        net.worker(),
        "serve",
        &["--skill", "upper:Upper case", "--exec", "tr a-z A-Z"],
    )?;
    let mut command = Command::new(python);
    command
        .arg(repo_root().join("interop/mcp/client.py"))
        .arg("--rhizo")
        .arg(BIN)
        .arg("--data-dir")
        .arg(net.client.data_dir())
        .args(["--to", "worker", "--worker-uid", net.worker().uid()])
        .args(["--skill", "upper"])
        .args(["--text", "hello agents", "--expect", "HELLO AGENTS"])
        .args(["--wait-seconds", "90"]);
    let mut client = Program::start("mcp-client", &mut command, net.client.data_dir())?;
    let status = client.wait(TIMEOUT)?;
    let output = format!("{}\n{}", client.output(), worker.output());
    ensure!(status.success(), "client.py failed ({status}):\n{output}");
    ensure!(output.contains("PASS"), "client.py did not pass:\n{output}");
    Ok(())
}
