"""recstream's settings: one frozen pydantic-settings class, environment prefix ``RECSTREAM_``.

Every field but the secrets is also a command-line option (``--kafka-bootstrap`` for
``kafka_bootstrap``), see ``stream.cli``; a secret comes from the environment, or from a file
its ``..._FILE`` setting names. Validation happens at start-up, with messages that say what to
change.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from encoders.base import DEFAULT_MODEL

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
SECRET_SETTINGS = frozenset({"kafka_sasl_password", "qdrant_api_key"})
"""Never command-line options (other users of the machine can read a command line in ``ps``):
the environment, or the file their ``..._file`` setting names."""
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class Settings(BaseSettings):
    """Everything a recstream process can be told; see the README's configuration table."""

    # a field's docstring is its description (its --help line) where Field() gives none
    model_config = SettingsConfigDict(
        env_prefix="RECSTREAM_", frozen=True, extra="ignore", use_attribute_docstrings=True
    )
    _generation: int = PrivateAttr(default=0)
    """The store generation served (set from the store's pointer, never by a user)."""

    # Kafka
    kafka_bootstrap: str = "localhost:9092"
    """Kafka bootstrap servers: host:port[,host:port...]"""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"""
    kafka_sasl_mechanism: str | None = None
    """SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); SASL_* needs it"""
    kafka_sasl_username: str | None = None
    """SASL user name; SASL_* needs it"""
    kafka_sasl_password: SecretStr | None = None
    """SASL password: a secret, from the environment or its _FILE setting only"""
    kafka_sasl_password_file: str | None = Field(
        default=None, description="a file holding the SASL password (instead of the variable)"
    )
    kafka_ssl_ca_location: str | None = None
    """CA certificate file for SSL and SASL_SSL"""
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    """a consumer not heard from this long leaves its group"""
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    """longest time between two polls, so one batch must fit in it; at least the session timeout"""
    kafka_assignment_strategy: Literal["range", "roundrobin", "cooperative-sticky"] = Field(
        default="range",
        description="partition assignment; cooperative-sticky moves fewer partitions on real "
        "Kafka, but the embedded broker does not complete cooperative rebalances",
    )
    group_id: str = "recstream"
    """consumer group prefix: <id>.catalog, <id>.behaviour, <id>.item-stats"""

    # topics
    topic_items: str = "catalog.items"
    """catalogue events in; dead letters in <topic>.dlq"""
    topic_user_events: str = "user.events"
    """shopper behaviour in; dead letters in <topic>.dlq"""
    topic_neighbours: str = "items.neighbours"
    """similar-item lists out (created compacted)"""
    topic_recommendations: str = "users.recommendations"
    """recommendations out (created compacted)"""
    topic_partitions: int = Field(
        default=4, ge=1, description="partitions of topics recstream creates"
    )
    topic_replication_factor: int = Field(
        default=-1,
        ge=-1,
        description="replicas of each topic recstream creates; -1 = the broker's own default "
        "(default.replication.factor)",
    )
    max_message_bytes: int = Field(
        default=262_144, ge=1_024, description="larger values go to the DLQ"
    )

    # vector store
    qdrant_url: str | None = None
    """a Qdrant server (http(s)://host:6333); unset: the embedded store at qdrant_path"""
    qdrant_api_key: SecretStr | None = None
    """the Qdrant server's API key: a secret, from the environment or its _FILE setting only"""
    qdrant_api_key_file: str | None = Field(
        default=None, description="a file holding the Qdrant API key (instead of the variable)"
    )
    qdrant_path: str = "./data/qdrant"
    """without qdrant_url: the embedded store's directory (one process at a time)"""

    # encoder
    model: str = DEFAULT_MODEL
    """the packaged all-MiniLM-L6-v2, or a local sentence-transformers/BERT model directory"""
    device: str = "auto"
    """auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda or cuda:N"""
    encoder_max_tokens: int = Field(
        default=0,
        ge=0,
        description="padded tokens of one forward pass (longest text x batch size); 0 = 1,024 "
        "on the CPU (fastest there, see bench/README.md), 131,072 on CUDA",
    )
    max_seq_length: int = Field(default=256, ge=8, le=8_192)
    """texts are cut to this many tokens"""
    encoder_quantize: Literal["auto", "none", "bf16", "int8"] = Field(
        default="auto",
        description="CPU precision: auto (int8 on ONNX Runtime; on torch, bf16 where the CPU "
        "computes it natively (AMX-BF16, AVX512-BF16), else fp32), none (fp32), bf16 (torch "
        "only), int8 (dynamic); ignored on CUDA, which runs bf16 (fp16 where unsupported)",
    )
    encoder_runtime: Literal["auto", "torch", "onnx"] = Field(
        default="auto",
        description="what runs the model on the CPU: auto (ONNX Runtime, except for bf16), "
        "torch, onnx; CUDA always runs on torch",
    )
    encoder_cache: str = Field(
        default="",
        description="directory of the ONNX exports of the model; empty = "
        "$XDG_CACHE_HOME/recstream/onnx (~/.cache)",
    )
    encoder_threads: int = Field(
        default=0,
        ge=0,
        description="encoder CPU threads (torch: the whole process; ONNX Runtime: its "
        "session); 0 = one per core",
    )

    lexical_weight: float = Field(
        default=0.5,
        ge=0.0,
        lt=1.0,
        allow_inf_nan=False,
        description="share of an item similarity given by the texts' character n-grams (model "
        "numbers, sizes, brands), the rest by the model's embedding; 0 = the embedding alone. "
        "Changing it or the next setting changes every vector: re-embed (README, Neighbour "
        "quality)",
    )
    lexical_dim: int = Field(default=1_024, ge=16, le=16_384)
    """dimensions the character n-grams are hashed into (more: fewer collisions, more memory)"""

    # micro-batching
    batch_max_items: int = Field(default=256, ge=1)
    """a micro-batch closes at this many events"""
    batch_max_tokens: int = Field(default=32_768, ge=64)
    """a micro-batch closes at this many tokens (at least max_seq_length)"""
    batch_max_wait_ms: int = Field(
        default=50,
        ge=0,
        description="how long a batch waits for more events once none is waiting, from its "
        "first event's publish; not waited while events come further apart than this (a "
        "trickle: the wait would gather none, so a lone event is processed at once); 0 = it "
        "closes at once (batches still grow, up to the limits above, from what queues while "
        "the one before is processed; a steady load then pays the per-batch cost for every "
        "one or two events: bench/README.md)",
    )
    behaviour_batch_max_wait_ms: int = Field(
        default=0,
        ge=0,
        description="batch_max_wait_ms for the behaviour consumer: its per-batch cost is small "
        "(a batch of 4 events ~20 ms), so under a steady load a lone event is ranked at once "
        "(at half load, 10,000 items: p99 129-222 ms with 0 against 297-714 ms with 50; "
        "bench/README.md); its batches still grow to batch_max_items from what queues",
    )
    stats_batch_max_items: int = Field(
        default=4_096,
        ge=1,
        description="the item-stats consumer's batch size: its messages are small, and a batch "
        "reads and rewrites each item's statistics once",
    )

    # outputs
    neighbours_k: int = Field(default=10, ge=1, le=1_000)
    """length of each similar-item list"""
    lists_in_stock_only: bool = Field(
        default=False,
        description="similar-item lists (topic and API) name only items in stock: an item going "
        "out of stock leaves the lists naming it, and enters them again when back",
    )
    lists_min_score: float = Field(
        default=-1.0,
        ge=-1.0,
        le=1.0,
        description="similar-item lists (topic and API) leave out neighbours scoring below this "
        "cosine similarity (-1: none left out; lists may then be shorter than k)",
    )
    recommendations_n: int = Field(default=20, ge=1, le=1_000)
    """length of each recommendation list"""
    neighbour_search: Literal["auto", "memory", "store"] = Field(
        default="auto",
        description="where the catalog consumer computes lists: memory (exact matrix products "
        "on an in-memory copy of the catalogue; one writer process only), store (store queries), "
        "auto (memory unless the store is a shared server)",
    )
    neighbour_precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="memory search's first pass over the catalogue: bfloat16 scores every item "
        "roughly from a half-size copy of the vectors and again in float32 only the pairs within "
        "the rounding's bound of a list (lists as float32 gives them, in about 0.6x the time; "
        "the copy takes 2 bytes a number more: 282 MB per 100,000 items at 1,408 dimensions), "
        "float32 scores every pair exactly, auto: bfloat16 on CPUs that multiply it natively "
        "(AVX512_BF16, AMX), else float32",
    )
    neighbour_cluster_order: bool = Field(
        default=True,
        description="memory search keeps the vectors in cluster order, so that a search reads "
        "each cluster in place (at 100,000 items the rest of a new item's cost fell from 2.9-3.0 "
        "to 2.3-2.5 ms); "
        "each time the clusters are made again (the catalogue grew by half) the vectors are "
        "copied so on a worker thread and held twice for that moment (+560 MB per 100,000 items "
        "at 1,408 dimensions, +280 MB with the bfloat16 copy). false: no copy",
    )
    list_stage: Literal["auto", "inline", "topic"] = Field(
        default="auto",
        description="who writes and publishes the similar-item lists: inline (the catalog "
        "consumer, one process per store), topic (the catalog consumer publishes list work to "
        "an internal topic keyed by list owner; a lists consumer is each list's only writer: "
        "several instances on one Qdrant server), auto (topic with a Qdrant server unless "
        "RECSTREAM_SINGLE_WRITER, else inline)",
    )
    single_writer: bool = Field(
        default=False,
        description="with a Qdrant server: promise that this is the only process writing its "
        "catalogue, which memory search needs",
    )
    reverse_search_page: int = Field(
        default=64,
        ge=1,
        description="store search: page size of the search for lists a changed item enters",
    )
    reverse_search_max_pages: int = Field(default=16, ge=1)
    """store search: most pages of the search for lists a changed item enters"""
    repair_sweep_per_s: float = Field(
        default=10.0,
        ge=0,
        allow_inf_nan=False,
        description="lists checked again against a fresh top k per second of catalog "
        "consumer activity, round the catalogue, by each catalog instance (0: no sweep)",
    )

    # shopper behaviour -> profiles and item statistics
    weight_view: float = Field(default=1.0, ge=0, description="profile/popularity weight of a view")
    weight_click: float = Field(default=2.0, ge=0)
    """profile/popularity weight of a click"""
    weight_add_to_cart: float = Field(default=4.0, ge=0)
    """profile/popularity weight of an add to cart"""
    weight_purchase: float = Field(default=8.0, ge=0)
    """profile/popularity weight of a purchase"""
    profile_half_life_hours: float = Field(
        default=72.0, gt=0, description="age at which an interaction counts half in a profile"
    )
    history_max: int = Field(default=50, ge=1, le=1_000, description="interactions kept per user")
    history_max_future_s: float = Field(
        default=86_400.0,
        ge=0,
        description="a shopper event whose occurred_at is more than this many seconds ahead of "
        "the consumer's clock is dead-lettered (future_event)",
    )
    popularity_half_life_hours: float = Field(default=168.0, gt=0)
    """age at which an interaction counts half in popularity and co-occurrence"""
    cooccurrence_window: int = Field(
        default=10, ge=1, description="a user's recent items paired with each new interaction"
    )
    cooccurrence_max: int = Field(default=100, ge=1, description="co-occurring items kept per item")

    # ranking (score = sum of weight x component, each component in [0, 1])
    rank_weight_semantic: float = Field(
        default=0.2, ge=0, description="weight of the profile's cosine with the item"
    )
    rank_weight_collaborative: float = Field(
        default=0.2, ge=0, description="weight of live co-occurrence with recent items"
    )
    rank_weight_learned: float = Field(
        default=0.4, ge=0, description="weight of the trained model (recstream train recommender)"
    )
    rank_weight_popularity: float = Field(default=0.1, ge=0)
    """weight of the item's popularity"""
    rank_weight_price: float = Field(default=0.1, ge=0)
    """weight of the shopper's price affinity"""
    rank_tuned: bool = Field(
        default=True,
        description="use the ranking settings `recstream tune` stored in the store, where it "
        "stored any (they win over these settings)",
    )
    rank_lexical: bool = Field(
        default=False,
        description="shoppers' profiles and the semantic component read hybrid vectors whole; "
        "off: only the model's part (a shopper's taste is not spelt; a quarter of the floats)",
    )
    rank_precision: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="shoppers' semantic candidates: float32 finds each profile's nearest items "
        "exactly; bfloat16 (from 20,000 items) scores every item from a half-size copy of the "
        "vectors and again in float32 only its best k x 1.5 (the same candidates but at the "
        "margin, in about half the time; 2 bytes a number more), auto: bfloat16 on CPUs that "
        "multiply it natively (AVX512_BF16, AMX), else float32",
    )
    rank_index_refresh_s: float = Field(
        default=600.0,
        gt=0,
        description="how often the behaviour consumer re-reads, whole, its copy of the items "
        "(vectors, price, stock); catalog writes and deletes are taken in at the next batch",
    )
    rank_reload_s: float = Field(
        default=60.0, gt=0, description="how often consumers re-read tuned settings"
    )

    # the learned model (recstream train recommender)
    learned_half_life_hours: float = Field(
        default=1_440.0,
        gt=0,
        description="age at which an interaction counts half in training and in a shopper's "
        "side of the model",
    )
    learned_l2: float = Field(default=100.0, gt=0, description="EASE's L2 regularisation")
    learned_neighbours: int = Field(
        default=50, ge=1, le=10_000, description="weights kept per item"
    )
    learned_dense_max_items: int = Field(
        default=15_000,
        ge=0,
        description="EASE (items x items dense) up to this many items; item-kNN beyond",
    )
    rank_candidates: int = Field(
        default=50,
        ge=1,
        description="candidates drawn from each source (50 and 100 scored alike on Online Retail; "
        "each costs every shopper's list a little: bench/README.md)",
    )
    rank_price_sigma: float = Field(
        default=0.5, gt=0, description="width of price affinity, in natural-log price units"
    )
    rank_exclude_purchased_days: float = Field(
        default=30.0, ge=0, description="items bought this recently are not recommended"
    )
    rank_mmr_lambda: float = Field(
        default=1.0, ge=0, le=1, description="1 = pure relevance; lower trades it for diversity"
    )

    # failures: a batch whose store writes or publishes fail is retried, partitions paused
    retry_backoff_ms: int = Field(default=200, ge=1, description="first retry delay, doubling")
    retry_max_backoff_ms: int = Field(default=10_000, ge=1)
    """longest retry delay"""
    retry_budget_s: float = Field(
        default=600.0, gt=0, description="give up (exit non-zero, nothing committed) after this"
    )
    shutdown_timeout_s: float = Field(
        default=30.0, gt=0, description="on SIGTERM, abandon an unfinished batch after this"
    )
    generation_check_s: float = Field(
        default=2.0,
        gt=0,
        description="how often a running process looks whether `recstream migrate` switched "
        "the store to another generation (it then starts its consumers again on it)",
    )
    startup_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="how long start-up waits for the Kafka broker and a Qdrant server to "
        "answer before it exits non-zero, naming the setting to check",
    )

    # HTTP: health, readiness, metrics and queries, beside the consumers (stream.http)
    http_host: str = Field(
        default="0.0.0.0", description="address the HTTP API listens on (0.0.0.0: every one)"
    )
    http_port: int = Field(
        default=8080,
        ge=0,
        le=65_535,
        description="port of the HTTP API (/healthz, /readyz, /metrics, /v1/...); 0 turns it "
        "off for `run` (`serve` needs one)",
    )
    http_admin: bool = Field(
        default=False,
        description="also serve /v1/admin/migrate and /v1/admin/rollback: `recstream migrate "
        "--via URL` runs inside this process (the embedded store's one process) while it "
        "serves; anyone who reaches the port can start one",
    )

    log_format: Literal["json", "console"] = "json"
    """json (one object per line) or console, on stderr"""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """debug, info, warning or error"""

    @field_validator("device")
    @classmethod
    def _device_known(cls, value: str) -> str:
        if not _DEVICE.match(value):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, not {value!r}")
        return value

    @field_validator("topic_replication_factor")
    @classmethod
    def _replicas(cls, value: int) -> int:
        if value == 0:
            raise ValueError("must be -1 (the broker's default) or at least 1")
        return value

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: Any) -> Any:
        """A secret's ``..._file`` setting: the file's text, less a final newline."""
        if not isinstance(data, dict):
            return data
        for name in sorted(SECRET_SETTINGS):
            path = data.get(f"{name}_file")
            if not path:
                continue
            variable = f"RECSTREAM_{name.upper()}"
            if data.get(name):
                raise ValueError(f"set {variable} or {variable}_FILE, not both")
            try:
                data = {**data, name: Path(path).read_text().removesuffix("\n")}
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(
                    f"{variable}_FILE: cannot read {path}: {type(exc).__name__}"
                ) from None
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_mechanism and self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                "kafka_security_protocol is SASL_*: set RECSTREAM_KAFKA_SASL_MECHANISM, "
                "RECSTREAM_KAFKA_SASL_USERNAME and RECSTREAM_KAFKA_SASL_PASSWORD"
            )
        if self.kafka_max_poll_interval_ms < self.kafka_session_timeout_ms:
            raise ValueError(
                "kafka_max_poll_interval_ms must be at least kafka_session_timeout_ms "
                f"({self.kafka_session_timeout_ms}); raise RECSTREAM_KAFKA_MAX_POLL_INTERVAL_MS"
            )
        if 0 < self.encoder_max_tokens < 64:
            raise ValueError(
                f"encoder_max_tokens ({self.encoder_max_tokens}) must be 0 (the device's "
                "default) or at least 64; change RECSTREAM_ENCODER_MAX_TOKENS"
            )
        if self.neighbour_search == "memory" and self.qdrant_url and not self.single_writer:
            raise ValueError(
                "RECSTREAM_NEIGHBOUR_SEARCH=memory with a Qdrant server (RECSTREAM_QDRANT_URL): "
                "each process would miss the others' items; set RECSTREAM_NEIGHBOUR_SEARCH=store "
                "(or auto), or RECSTREAM_SINGLE_WRITER=true if this is the only writer"
            )
        if self.qdrant_url and self.qdrant_api_key and not _private_url(self.qdrant_url):
            raise ValueError(
                "RECSTREAM_QDRANT_API_KEY would cross the network unencrypted: give "
                "RECSTREAM_QDRANT_URL as https://... (plain http only to localhost or 127.0.0.1)"
            )
        if self.batch_max_tokens < self.max_seq_length:
            raise ValueError(
                f"batch_max_tokens ({self.batch_max_tokens}) is smaller than one item "
                f"(max_seq_length {self.max_seq_length}); raise RECSTREAM_BATCH_MAX_TOKENS"
            )
        return self

    def dlq_topic(self, topic: str) -> str:
        """The dead-letter topic of an input topic."""
        return f"{topic}.dlq"

    def at_generation(self, number: int) -> Settings:
        """These settings for the consumers of the store's generation ``number``
        (:mod:`stream.generations`): its catalog, behaviour and lists consumer groups and its
        list-work topic are its own."""
        copy = self.model_copy()
        copy._generation = number
        return copy

    def _generation_suffix(self) -> str:
        return f".g{self._generation}" if self._generation else ""

    def catalog_group(self) -> str:
        return f"{self.group_id}.catalog{self._generation_suffix()}"

    def behaviour_group(self) -> str:
        return f"{self.group_id}.behaviour{self._generation_suffix()}"

    def stats_group(self) -> str:
        return f"{self.group_id}.item-stats"

    def lists_group(self) -> str:
        return f"{self.group_id}.lists{self._generation_suffix()}"

    def topic_list_work(self) -> str:
        """Internal topic: list work of catalogue changes, keyed by the list's owner item (each
        generation its own: the work names the generation's vectors)."""
        return f"{self.group_id}.list-work{self._generation_suffix()}"

    def topic_item_activity(self) -> str:
        """Internal topic: behaviour repartitioned by item id (like a Kafka Streams repartition)."""
        return f"{self.group_id}.item-activity"

    def behaviour_weights(self) -> dict[str, float]:
        return {
            "view": self.weight_view,
            "click": self.weight_click,
            "add_to_cart": self.weight_add_to_cart,
            "purchase": self.weight_purchase,
        }


def _private_url(url: str) -> bool:
    """True when a key sent to ``url`` is encrypted (https) or stays on this machine."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return parts.scheme == "https" or (parts.hostname or "") in _LOOPBACK
