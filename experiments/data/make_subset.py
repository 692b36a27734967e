"""Rebuild the embedded default data: a small subset of public tool-use data, copied unchanged.

    python experiments/data/make_subset.py ../shared/data

Each source keeps its LICENSE (all Apache-2.0) beside its files; see ATTRIBUTION.md.
"""

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent


def copy_license(src: Path, name: str) -> Path:
    out = HERE / name
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / name / "LICENSE", out / "LICENSE")
    return out


def main(shared: Path) -> None:
    # Training mix: glaive (150 conversations), ToolAlpaca golden trajectories on real APIs (with
    # real HTTP errors for MAE), Seal-Tools dev (200), API-Bank level-1 dialogues, 2 ToolBench trees.
    out = copy_license(shared, "glaive_toolcall")
    records = json.loads((shared / "glaive_toolcall/glaive_toolcall_en_demo.json").read_text())
    (out / "glaive_toolcall_en_subset.json").write_text(json.dumps(records[:150], ensure_ascii=False, indent=1))

    out = copy_license(shared, "toolalpaca_golden")
    shutil.copy(shared / "toolalpaca_golden/golden-eval_real.json", out)

    out = copy_license(shared, "seal_tools")
    lines = (shared / "seal_tools/dev.jsonl").read_text().splitlines()[:200]
    (out / "dev_subset.jsonl").write_text("\n".join(lines) + "\n")
    held_out = (shared / "seal_tools/test_in_domain.jsonl").read_text().splitlines()[:50]
    (out / "test_in_domain_subset.jsonl").write_text("\n".join(held_out) + "\n")
    called = {call["api"] for line in lines + held_out for call in json.loads(line)["calling"]}
    tools = [t for t in (shared / "seal_tools/tool.jsonl").read_text().splitlines() if json.loads(t)["api_name"] in called]
    (out / "tool.jsonl").write_text("\n".join(tools) + "\n")

    out = copy_license(shared, "api_bank")
    shutil.copy(shared / "api_bank/all_apis.csv", out)
    shutil.copytree(shared / "api_bank/lv1-lv2-samples/level-1-given-desc", out / "level-1-given-desc", dirs_exist_ok=True)

    out = copy_license(shared, "toolbench_examples")
    for name in ("G1_answer/10_ChatGPT_DFS_woFilter_w2.json", "G1_answer/11_ChatGPT_DFS_woFilter_w2.json"):
        (out / "answer" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shared / "toolbench_examples/answer" / name, out / "answer" / name)

    # Evaluation: the first 50 Seal-Tools test_in_domain records (above), and the first 100 BFCL v3
    # simple and 50 multiple questions with their gold answers.
    out = copy_license(shared, "bfcl_v3")
    (out / "possible_answer").mkdir(exist_ok=True)
    for name, n in (("BFCL_v3_simple.json", 100), ("BFCL_v3_multiple.json", 50)):
        for sub in ("", "possible_answer/"):
            lines = (shared / "bfcl_v3" / sub / name).read_text().splitlines()[:n]
            (out / sub / name).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
