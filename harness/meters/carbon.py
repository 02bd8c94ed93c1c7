"""CO2 from energy, with the grid carbon intensity data that codecarbon ships (offline).

The intensity is what codecarbon's own offline path uses for private infrastructure
(``codecarbon.core.emissions.Emissions.get_private_infra_emissions``): the country's figure from
``global_energy_mix.json``, or a regional one for US states, Canadian provinces, Chinese provinces
and Nordic bidding zones (SE1..SE4, NO1..NO5, FI) when ``region`` names one. No network is used
(the Electricity Maps path is never enabled here).
"""

from __future__ import annotations

from functools import cache
from typing import Any

METHOD = "codecarbon_offline_grid_intensity"
#: Countries for which codecarbon has regional data (its own list, see module docstring).
_REGIONAL = {"USA", "CAN", "CHN", "SWE", "NOR", "FIN"}
#: Nordic bidding zones codecarbon has figures for (codecarbon.core.emissions).
_NORDIC_ZONES = {
    "SWE": {"SE1", "SE2", "SE3", "SE4"},
    "NOR": {"NO1", "NO2", "NO3", "NO4", "NO5"},
    "FIN": {"FI"},
}


@cache
def _intensity(country: str, region: str | None) -> tuple[float, str]:
    """(g CO2eq per kWh, "region" | "country") for a country and optional region."""
    import logging

    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import GeoMetadata
    from codecarbon.input import DataSource

    logging.getLogger("codecarbon").setLevel(logging.ERROR)
    source = DataSource()
    mix = source.get_global_energy_mix_data()
    if country not in mix:
        examples = ", ".join(c for c in ("USA", "FRA", "DEU", "GBR") if c in mix)
        raise ValueError(
            f"unknown country_iso_code {country!r}: not in codecarbon's offline grid data "
            f"(ISO 3166-1 alpha-3, e.g. {examples})"
        )
    engine = Emissions(source)
    one_kwh = Energy.from_energy(kWh=1.0)
    if region is None or country not in _REGIONAL:
        geo = GeoMetadata(country_iso_code=country, country_name=mix[country]["country_name"])
        return engine.get_country_emissions(one_kwh, geo) * 1000.0, "country"
    geo = GeoMetadata(
        country_iso_code=country, country_name=mix[country]["country_name"], region=region.lower()
    )
    unknown = ValueError(
        f"unknown region {region!r} for {country} in codecarbon's offline grid data "
        "(leave region empty for the national figure)"
    )
    # codecarbon itself falls back to the national figure for an unknown region (logging an error
    # at best); a typo must not silently change the number, so refuse instead.
    if country in _NORDIC_ZONES and region.upper() not in _NORDIC_ZONES[country]:
        raise unknown
    try:
        if country == "CHN" and hasattr(engine, "_try_get_china_province_emissions"):
            kg = engine._try_get_china_province_emissions(one_kwh, geo)
            if kg is None:
                raise unknown
        else:
            kg = engine.get_region_emissions(one_kwh, geo)
    except Exception:  # codecarbon: ValueError (US state), KeyError (Canadian province)
        raise unknown from None
    return kg * 1000.0, "region"


def co2_grams(energy_j: float | None, measurement: dict[str, Any]) -> tuple[float | None, dict]:
    """CO2-equivalent grams for ``energy_j`` joules at the measurement's country/region.

    Returns ``(grams, info)`` with ``info`` = {method, country_iso_code, region,
    carbon_intensity_g_per_kwh, level} (level: whether a regional or the national figure was used).
    ``energy_j`` None gives None grams (the intensity is still reported). Raises ValueError (one
    line) for a country or region codecarbon has no data for. When codecarbon is not installed the
    grams and intensity are None and ``info["error"]`` says why.
    """
    country = (measurement.get("country_iso_code") or "USA").upper()
    region = measurement.get("region") or None
    info: dict[str, Any] = {
        "method": METHOD,
        "country_iso_code": country,
        "region": region,
        "carbon_intensity_g_per_kwh": None,
    }
    try:
        import codecarbon  # noqa: F401 - availability check only
    except ImportError:
        info["error"] = "codecarbon is not installed: no offline grid intensity data"
        return None, info
    g_per_kwh, level = _intensity(country, region)
    info["carbon_intensity_g_per_kwh"] = g_per_kwh
    info["level"] = level
    if energy_j is None:
        return None, info
    return energy_j / 3.6e6 * g_per_kwh, info
