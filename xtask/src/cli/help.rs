//! The examples and notes each subcommand's `--help` ends with.

pub(super) const FETCH_EXAMPLES: &str = "\
Examples:
  cargo xtask models fetch                       # every non-optional model
  cargo xtask models fetch --group gfpgan        # one group
  cargo xtask models fetch --model sadtalker-256 --timeout 120
  cargo xtask models fetch --all --log-file fetch.log
  cargo xtask models fetch --jobs 8 --mirror https://models.internal/
  cargo xtask models fetch --offline             # cache and local mirrors only

Exit codes: 0 all present, 1 some model could not be fetched, 2 usage or manifest error.";

pub(super) const VERIFY_EXAMPLES: &str = "\
Examples:
  cargo xtask models verify                      # hash every non-optional model
  cargo xtask models verify --model gfpgan-1.4
  cargo xtask models verify --all --quiet        # only problems and the summary
  cargo xtask models verify --full               # hash everything, ignore stamps
  cargo xtask models verify --manifest-only      # check models.toml alone (pre-commit)

Exit codes: 0 all ok, 1 some model missing or wrong, 2 usage or manifest error.";

pub(super) const CLEAN_EXAMPLES: &str = "\
Examples:
  cargo xtask models clean --dry-run             # list what would go
  cargo xtask models clean                       # remove partial files and models no longer listed
  cargo xtask models clean --unknown             # also files this tool did not make
  cargo xtask models clean --all --yes           # remove the model files as well
  cargo xtask models clean --cache --dry-run     # list cache entries not pinned here

Exit codes: 0 done, 1 some file could not be removed, 2 usage or manifest error.";

pub(super) const STATUS_EXAMPLES: &str = "\
Examples:
  cargo xtask models status                      # every non-optional model
  cargo xtask models status --all --json         # for scripts

States: ok-stamped, unverified (right size, not hashed since it changed: run verify),
missing, partial N%, wrong size, wrong hash, not a file.";

pub(super) const ADD_EXAMPLES: &str = "\
Examples:
  cargo xtask models add https://host/releases/v1/model.pth --group extra
  cargo xtask models add https://a/model.pth --url https://b/model.pth --name my-model
  cargo xtask models add https://a/model.pth --sha256 <hex> --dry-run

Exit codes: 0 pinned, 1 download failed or --sha256 differs, 2 usage error or duplicate.";

pub(super) const RUN_EXAMPLES: &str = "\
Examples:
  cargo xtask models run -- python inference.py --driven_audio a.wav --source_image face.png
  cargo xtask models run --group gfpgan -- python inference.py --enhancer gfpgan

The command finds the checkpoints directory in $MODELS_CHECKPOINTS_DIR. It starts only
when every selected model is present and verified; its exit code becomes this one's.";

pub(super) const HOOK_EXAMPLES: &str = "\
Examples:
  cargo xtask models hook install                # check models.toml and the models on commit
  cargo xtask models hook uninstall              # remove exactly what install wrote

The hook runs `cargo xtask models verify --manifest-only` when models.toml is staged, then
`cargo xtask models verify --quiet`, which trusts unchanged files by their stamps.";

pub(super) const DOCTOR_EXAMPLES: &str = "\
Examples:
  cargo xtask models doctor                   # proxies, certificates, space, leftovers, hook
  cargo xtask models doctor --urls --all      # also: does every URL still serve its pin?
  cargo xtask models doctor --urls --json     # for a nightly job

Exit codes: 0 all well, 1 a problem was found (a dead or stale URL, too little space, an
unreadable CA bundle), 2 usage or manifest error.";

pub(super) const MIRROR_EXAMPLES: &str = "\
Examples:
  cargo xtask models mirror /srv/models-mirror           # export the default set
  cargo xtask models mirror /mnt/ci-cache --all
  cargo xtask models fetch --mirror /mnt/ci-cache        # later jobs read it first
  cargo xtask models mirror s3://models/team --all       # publish to a bucket (AWS_* settings)
  cargo xtask models fetch --mirror s3://models/team     # runners read it first

Exit codes: 0 all exported, 1 some model was not present and verified, 2 usage error.";

pub(super) const INIT_EXAMPLES: &str = "Examples:
  cargo xtask models init ../SadTalker                            # from a checkout of this tool
  xtask models init . --tool-git https://example.org/you/this-tool.git
  xtask models init . --tool-path ~/src/this-tool

Then, in that repository: `cargo xtask models add URL`, `cargo xtask models fetch`.";
