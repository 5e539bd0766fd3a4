"""The collection tarball holds what a collection ships, and nothing of the lab, benchmarks, demo or tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_built_collection_ships_plugins_roles_playbooks_and_licence_only(tmp_path):
    galaxy = os.path.join(os.path.dirname(sys.executable), "ansible-galaxy")
    built = subprocess.run([galaxy, "collection", "build", ROOT, "--output-path", str(tmp_path)],
                           capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    (tarball,) = [p for p in os.listdir(tmp_path) if p.endswith(".tar.gz")]
    with tarfile.open(os.path.join(tmp_path, tarball)) as archive:
        names = archive.getnames()
    tops = {name.split("/")[0] for name in names}
    assert {"plugins", "roles", "playbooks", "meta", "LICENSE", "README.md", "MANIFEST.json"} <= tops, tops
    assert not tops & {"lab", "bench", "demo", "workloads", "scripts", "tests", "ansible.cfg", ".venv"}, tops
    assert "plugins/filter/place_pods.py" in names and "plugins/test/in_window.py" in names
    assert all("roles/%s/README.md" % r in names and "roles/%s/meta/argument_specs.yml" % r in names
               for r in os.listdir(os.path.join(ROOT, "roles")))


def test_galaxy_importer_accepts_the_built_collection(tmp_path):
    """Galaxy's own import checks (metadata, docs, role READMEs, ansible-lint); ansible-test sanity runs apart."""
    bin_dir = os.path.dirname(sys.executable)
    built = subprocess.run([os.path.join(bin_dir, "ansible-galaxy"), "collection", "build", ROOT,
                            "--output-path", str(tmp_path)], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    (tarball,) = [p for p in os.listdir(tmp_path) if p.endswith(".tar.gz")]
    config = tmp_path / "galaxy-importer.cfg"
    config.write_text("[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nRUN_ANSIBLE_LINT = True\n")
    imported = subprocess.run([sys.executable, "-m", "galaxy_importer.main", str(tmp_path / tarball)],
                              capture_output=True, text=True, check=False, cwd=str(tmp_path),
                              env=dict(os.environ, GALAXY_IMPORTER_CONFIG=str(config),
                                       PATH=bin_dir + os.pathsep + os.environ["PATH"]))
    output = imported.stdout + imported.stderr
    assert imported.returncode == 0, output
    assert "Importer processing completed successfully" in output, output
    assert "WARNING" not in output, output


def test_the_changelog_is_the_one_antsibull_changelog_makes_from_its_fragments(tmp_path):
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ["PATH"])
    tool = os.path.join(bin_dir, "antsibull-changelog")
    linted = subprocess.run([tool, "lint"], cwd=ROOT, capture_output=True, text=True, check=False, env=env)
    assert linted.returncode == 0 and not linted.stdout.strip(), linted.stdout + linted.stderr
    made = tmp_path / "CHANGELOG.md"
    generated = subprocess.run([tool, "generate", "--output", str(made)], cwd=ROOT, capture_output=True,
                               text=True, check=False, env=env)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert made.read_text() == open(os.path.join(ROOT, "CHANGELOG.md")).read()


def test_every_role_documents_its_inputs():
    roles = sorted(os.listdir(os.path.join(ROOT, "roles")))
    doc = os.path.join(os.path.dirname(sys.executable), "ansible-doc")
    listed = subprocess.run([doc, "-t", "role", "-l", "autopod.autopod"], capture_output=True, text=True, check=False,
                            env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".collections")))
    assert listed.returncode == 0, listed.stderr
    for role in roles:
        assert os.path.exists(os.path.join(ROOT, "roles", role, "README.md")), role
        assert "autopod.autopod.%s" % role in listed.stdout, (role, listed.stdout)


def test_the_execution_environment_context_installs_this_collection_and_pyroute2(tmp_path):
    version = yaml.safe_load(open(os.path.join(ROOT, "galaxy.yml")))["version"]
    bin_dir = os.path.dirname(sys.executable)
    built = subprocess.run([os.path.join(bin_dir, "ansible-galaxy"), "collection", "build", ROOT, "--force",
                            "--output-path", os.path.join(ROOT, "build")], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stderr
    context = str(tmp_path / "context")
    # the file's default name follows whichever container runtime the machine has (podman: Containerfile)
    created = subprocess.run([os.path.join(bin_dir, "ansible-builder"), "create", "-f",
                              os.path.join(ROOT, "ee", "execution-environment.yml"), "-c", context,
                              "--output-filename", "Containerfile"], capture_output=True, text=True, check=False)
    assert created.returncode == 0, created.stdout + created.stderr
    tarball = "autopod-autopod-%s.tar.gz" % version
    assert os.path.exists(os.path.join(context, "_build", "collections", tarball))
    wanted = yaml.safe_load(open(os.path.join(context, "_build", "requirements.yml")))["collections"]
    assert {"name": "/build/collections/" + tarball, "type": "file"} in wanted
    assert "pyroute2" in open(os.path.join(context, "_build", "requirements.txt")).read()
    assert "ansible-galaxy collection install" in open(os.path.join(context, "Containerfile")).read()


def test_the_awx_surveys_ask_only_for_variables_their_playbook_reads():
    for survey, playbook_name in (("rolling_patch.survey.json", "rolling_patch.yml"),
                                  ("move_pod.survey.json", "move_pod.yml")):
        with open(os.path.join(ROOT, "meta", "awx", survey)) as handle:
            spec = json.load(handle)["spec"]
        text = open(os.path.join(ROOT, "playbooks", playbook_name)).read()
        for question in spec:
            assert {"question_name", "variable", "type", "required", "default"} <= set(question), question
            assert question["variable"] in text, (survey, question["variable"])
            if question["type"] in ("multiplechoice", "multiselect"):
                assert question["choices"] and (question["default"] in question["choices"] or not question["default"])
