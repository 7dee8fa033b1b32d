from evalruns.domain.definitions import DefinitionInput
from evalruns.services import Services


def test_definition_round_trip(services: Services) -> None:
    created = services.definitions.create(
        DefinitionInput(name="x", template="Hello [A]", dimensions=[{"name": "a", "values": ["p", "q"]}])
    )
    loaded = services.definitions.get(created.id)
    assert loaded == created
    assert loaded.scenario_count == 2
