"""Two-hop delegation: this agent (B) offers a skill whose work it partly delegates to
another agent (C), found by skill through the DHT. A client (A) delegates to B as to any agent:

    A ──task "pipeline"──▶ B ──task "upper"──▶ C
    A ◀──reversed(upper)── B ◀────upper─────── C

Run C (`worker.py --skill upper`), then B, then a client:

    python3 examples/agents/two_hop.py --skill pipeline --via upper [--data-dir DIR_B]
    python3 examples/agents/client.py --skill pipeline --text "abc" --data-dir DIR_A   # CBA
"""

import argparse

from rhizo_api import Api
from worker import work


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir")
    parser.add_argument("--skill", default="pipeline")
    parser.add_argument("--via", default="upper", help="the skill B delegates to C")
    parser.add_argument("--name", default="two-hop agent")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    api = Api(args.data_dir)

    def handle(text):
        # The part C does: found by skill, delegated, awaited.
        c = api.find_agent(args.via, timeout=args.timeout)
        sub = api.delegate_and_wait(c, text, skill=args.via, timeout=args.timeout)
        if sub["status"]["state"] != "completed":
            raise RuntimeError(f"the {args.via} agent's task ended {sub['status']['state']}")
        done = "".join(p.get("text", "") for a in sub["artifacts"] for p in a["parts"])
        # B's own part.
        return done[::-1]

    work(api, handle, args.skill, args.name)


if __name__ == "__main__":
    main()
