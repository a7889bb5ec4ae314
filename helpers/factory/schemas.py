"""Request and response bodies of the factory's REST API, mirroring Mistral's wire schema.

The contract is Mistral's public API as the ``mistralai`` SDK 2.5.1 sends and parses it (its
``models/`` request and response classes): responses carry every field the SDK requires,
discriminators included (``job_type``, model ``type``), and unknown request fields are ignored
like Mistral's API does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .job_states import JobStatus

MAX_CLASSIFY_INPUTS = 10_000
MAX_PAGE = 10**9  # page * page_size must fit SQLite's 64-bit integers
MAX_NAME = 256  # model ids, file ids, target and label names, W&B names
Name = Annotated[str, Field(max_length=MAX_NAME)]


class _In(BaseModel):
    # NaN and Infinity are refused (422) rather than stored, where they would break JSON
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


# -- files --------------------------------------------------------------------------------------


class FileOut(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str | None
    sample_type: str
    source: str
    num_lines: int | None = None
    mimetype: str | None = None
    signature: str | None = None
    expires_at: int | None = None
    visibility: str | None = None


class FileRetrieveOut(FileOut):
    deleted: bool = False


class FileList(BaseModel):
    data: list[FileOut]
    object: Literal["list"] = "list"
    total: int | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


# -- jobs ---------------------------------------------------------------------------------------


class TrainingFileIn(_In):
    file_id: Name
    weight: float = Field(1.0, gt=0)


class HyperparametersIn(_In):
    training_steps: int | None = Field(None, ge=1)
    learning_rate: float | None = Field(None, ge=1e-8, le=1)
    weight_decay: float | None = Field(None, ge=0, le=1)
    warmup_fraction: float | None = Field(None, ge=0, le=1)
    epochs: float | None = Field(None, gt=0)
    seq_len: int | None = Field(None, ge=1)


class WandbIntegrationIn(_In):
    type: Literal["wandb"] = "wandb"
    project: str = Field(min_length=1, max_length=MAX_NAME)
    api_key: str = Field(min_length=1, max_length=1024, repr=False)
    name: Name | None = None
    run_name: Name | None = None


class ClassifierTargetIn(_In):
    name: Name
    labels: list[Name]
    weight: float = Field(1.0, ge=0)
    loss_function: Literal["single_class", "multi_class"] | None = None


class JobCreate(_In):
    model: Name
    hyperparameters: HyperparametersIn = Field(default_factory=HyperparametersIn)
    training_files: list[TrainingFileIn] = Field(default_factory=list, max_length=100)
    validation_files: list[Name] | None = Field(None, max_length=100)
    suffix: str | None = Field(None, max_length=18, pattern=r"^[a-zA-Z0-9_-]+$")
    integrations: list[WandbIntegrationIn] | None = Field(None, max_length=10)
    auto_start: bool = False
    invalid_sample_skip_percentage: float = Field(0.0, ge=0, le=0.5)
    job_type: Literal["classifier", "completion"] | None = None
    classifier_targets: list[ClassifierTargetIn] | None = Field(None, max_length=100)


class Hyperparameters(BaseModel):
    training_steps: int | None = None
    learning_rate: float | None = None
    weight_decay: float | None = None
    warmup_fraction: float | None = None
    epochs: float | None = None
    seq_len: int | None = None


class WandbIntegrationOut(BaseModel):
    type: Literal["wandb"] = "wandb"
    project: str
    name: str | None = None
    run_name: str | None = None
    url: str | None = None


class JobMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. training_examples

    expected_duration_seconds: int | None = None
    cost: float | None = 0.0
    cost_currency: str | None = "EUR"
    train_tokens_per_step: int | None = None
    train_tokens: int | None = None
    data_tokens: int | None = None
    estimated_start_time: int | None = None


class ClassifierTargetOut(BaseModel):
    name: str
    labels: list[str]
    weight: float = 1.0
    loss_function: Literal["single_class", "multi_class"]


class Event(BaseModel):
    name: str
    created_at: int
    data: dict[str, Any] | None = None


class Checkpoint(BaseModel):
    metrics: dict[str, float]
    step_number: int
    created_at: int


class JobOut(BaseModel):
    id: str
    object: Literal["job"] = "job"
    job_type: Literal["classifier"] = "classifier"
    auto_start: bool
    model: str
    status: JobStatus
    created_at: int
    modified_at: int
    training_files: list[str]
    validation_files: list[str] | None = None
    hyperparameters: Hyperparameters
    fine_tuned_model: str | None = None
    suffix: str | None = None
    integrations: list[WandbIntegrationOut] | None = None
    trained_tokens: int | None = None
    metadata: JobMetadata | None = None
    classifier_targets: list[ClassifierTargetOut] = Field(default_factory=list)


class JobDetailsOut(JobOut):
    events: list[Event] = Field(default_factory=list)
    checkpoints: list[Checkpoint] = Field(default_factory=list)


class JobList(BaseModel):
    data: list[JobOut]
    object: Literal["list"] = "list"
    total: int


# -- classification -----------------------------------------------------------------------------


class ClassificationRequest(_In):
    model: Name
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_CLASSIFY_INPUTS)]
    metadata: dict[str, Any] | None = None


class TargetScores(BaseModel):
    scores: dict[str, float]


class ClassificationResponse(BaseModel):
    id: str
    model: str
    results: list[dict[str, TargetScores]]


# -- models -------------------------------------------------------------------------------------


class ModelCapabilities(BaseModel):
    completion_chat: bool = False
    completion_fim: bool = False
    function_calling: bool = False
    fine_tuning: bool = False
    vision: bool = False
    classification: bool = True


class _ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "local"
    name: str | None = None
    description: str | None = None
    max_context_length: int
    aliases: list[str] = Field(default_factory=list)
    capabilities: ModelCapabilities


class BaseModelCard(_ModelCard):
    type: Literal["base"] = "base"


class FTModelCard(_ModelCard):
    type: Literal["fine-tuned"] = "fine-tuned"
    job: str
    root: str
    archived: bool = False
    classifier_targets: list[ClassifierTargetOut]


ModelCard = Annotated[BaseModelCard | FTModelCard, Field(discriminator="type")]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"] = "model"
    deleted: bool = True


# -- embeddings ---------------------------------------------------------------------------------

MAX_EMBED_INPUTS = MAX_CLASSIFY_INPUTS


class EmbeddingRequest(_In):
    model: str
    input: str | Annotated[list[str], Field(min_length=1, max_length=MAX_EMBED_INPUTS)]
    metadata: dict[str, Any] | None = None
    output_dimension: int | None = Field(None, ge=1)
    output_dtype: Literal["float", "int8", "uint8", "binary", "ubinary"] | None = None
    encoding_format: Literal["float", "base64"] | None = None


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    embedding: list[float]
    index: int


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int


class EmbeddingResponse(BaseModel):
    id: str
    object: Literal["list"] = "list"
    model: str
    data: list[EmbeddingData]
    usage: EmbeddingUsage
