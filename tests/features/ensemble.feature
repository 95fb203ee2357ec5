@feature-workflow-definition
Feature: Ensemble files: validation, scaffolding and translation
  Users describe what to run as an ensemble. `dms validate` reports every problem with
  its line and column; `dms scaffold` writes a starter file; `dms translate` turns
  docker-compose, Kubernetes and Nomad files into ensembles, warning about anything it
  cannot carry over.

  Background:
    Given a fresh dms home

  Scenario: A valid ensemble passes validation
    Given an ensemble file "web.yaml" with:
      """
      version: V1
      allocations:
        web:
          type: service
          executor: docker
          resources: {cpu: {cores: 1}, ram: 512MiB}
          execution: {image: nginx:1.27}
          ports: [{port: 80}]
      nodes:
        main:
          allocations: [web]
          ports: [{public: 18080, private: 80, allocation: web}]
      """
    When I validate "web.yaml"
    Then the command succeeds
    And the output contains "valid ensemble: 1 allocation(s) on 1 node(s)"

  Scenario: Every error is reported at once, with positions and suggestions
    Given an ensemble file "broken.yaml" with:
      """
      version: V1
      allocations:
        web:
          type: service
          executor: docker
          resorces: {cpu: {cores: 1}, ram: 512MiB}
          execution: {image: nginx:1.27}
        db:
          type: service
          executor: docker
          resources: {cpu: {cores: 1}, ram: 2048}
          execution: {image: postgres:16}
      """
    When I validate "broken.yaml"
    Then the command fails with "the ensemble is not valid: 3 error(s)"
    And the error contains "broken.yaml:6:5: error: allocations.web.resorces: unknown key"
    And the error contains "help:     did you mean `resources`?"
    And the error contains "broken.yaml:4:5: error: allocations.web.resources: missing required key `resources`"
    And the error contains "broken.yaml:11:34: error: allocations.db.resources.ram: wrong type of value"

  Scenario: Semantic errors name the place and the fix
    Given an ensemble file "cycle.yaml" with:
      """
      version: V1
      allocations:
        api:
          type: service
          executor: docker
          resources: {cpu: {cores: 1}, ram: 256MiB}
          execution: {image: example/api:1}
          depends_on: [db]
        db:
          type: service
          executor: docker
          resources: {cpu: {cores: 1}, ram: 256MiB}
          execution: {image: postgres:16}
          depends_on: [api]
      nodes:
        main:
          allocations: [api, dbb]
      """
    When I validate "cycle.yaml"
    Then the command fails with "the ensemble is not valid"
    And the error contains "cycle.yaml:8:5: error: allocations.api.depends_on: dependency cycle"
    And the error contains "found:    api → db → api"
    And the error contains "cycle.yaml:17:24: error: nodes.main.allocations[1]: unknown allocation `dbb`"
    And the error contains "did you mean `db`?"
    And the error contains "error: allocations.db: allocation is not placed on any node"

  Scenario Outline: The scaffold is a valid starting point
    When I scaffold an ensemble for "<executor>" into "start.yaml"
    And I validate "start.yaml"
    Then the command succeeds

    Examples:
      | executor |
      | docker   |
      | wasm     |
      | vm       |

  Scenario Outline: Translated files validate, and what is dropped is listed
    When I translate the corpus file "<file>"
    Then the command succeeds
    And the error contains "<warning>"
    And the translation validates

    Examples:
      | file                                 | warning                                                   |
      | compose/voting-app.yml               | condition `service_healthy` is approximated               |
      | compose/api-stack.yml                | services.api.build: not translated                        |
      | kubernetes/nginx-deployment.yaml     | nginx-2: public port left dynamic                         |
      | kubernetes/postgres-statefulset.yaml | `POSTGRES_PASSWORD` takes its value from the cluster       |
      | nomad/webapp.hcl                     | task.server.template: not translated                      |
      | nomad/api-job.json                   | constraint `${meta.rack} != r1`                           |

  Scenario: A file of unknown format asks for --from
    Given an ensemble file "mystery.yaml" with:
      """
      hello: world
      """
    When I translate "mystery.yaml"
    Then the command fails with "pass --from compose, kubernetes or nomad"
