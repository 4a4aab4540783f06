"""Deployment settings (environment prefix TWIN_), read once in create_app."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiKey(BaseModel):
    """A client key: its clearance (highest classification it may read) and its scopes."""

    key: str
    name: str
    clearance: str = Field("public", pattern="^(public|internal|restricted)$")
    scopes: list[str] = Field(default_factory=list)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TWIN_", env_nested_delimiter="__")

    twin_dir: Path = Path("build/tianhe")
    api_keys: list[ApiKey] = Field(default_factory=list)
    api_keys_file: Path | None = Field(None, description="TOML file with [[keys]] entries")
    cors_origins: list[str] = ["*"]
    max_page_size: int = 1000
    default_page_size: int = 100
    static_cache_seconds: int = 3600
    mqtt_host: str | None = Field(None, description="MQTT broker for sensor ingest; None: no bridge")
    mqtt_port: int = 1883
    mqtt_client_id: str = "twin-sensors-ingest"
    public_url: str = Field("", description="base of absolute links in MQTT payloads")
    viewer_assets: Path | None = Field(None, description="CesiumJS build folder; default node_modules/cesium/Build/Cesium")
    nowcast_every_s: float | None = Field(None, gt=0, description="run the flood nowcast this often (s) while any "
                                                                  "rain gauge reads above zero; None: no schedule")
    nowcast_on_alarm: bool = Field(False, description="run the flood nowcast when a sensor alarm event opens")
    nowcast_min_interval_s: float = Field(300.0, ge=0, description="at least this long (s) between two nowcasts")
    nowcast_inputs: dict = Field(default_factory=dict, description="inputs of triggered nowcasts (JSON; "
                                                                   "simulate.nowcast.inputs.NowcastInputs)")
