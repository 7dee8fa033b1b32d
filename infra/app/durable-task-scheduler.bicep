// Durable Task Scheduler: the managed Durable Functions backend, deployed only when
// useDurableTaskScheduler is true. The app's identity gets Durable Task Data Contributor on
// the scheduler; the app connects with
// `Endpoint=<endpoint>;Authentication=ManagedIdentity;ClientID=<identity client id>`.

@description('Scheduler name (3-64 letters, digits and hyphens).')
@minLength(3)
@maxLength(64)
param name string

@description('Azure region.')
param location string

@description('Tags for the resource.')
param tags object = {}

@description('Task hub name; the app reads it as EVALRUNS_TASK_HUB.')
param taskHubName string

@description('Consumption bills per operation; Dedicated reserves capacity units.')
@allowed([
  'Consumption'
  'Dedicated'
])
param schedulerSkuName string = 'Consumption'

@description('Capacity units (Dedicated only).')
@minValue(1)
param capacity int = 1

@description('Principal (object) id of the function app identity.')
param appPrincipalId string

@description('Principal (object) id of the deployer, given dashboard access. Empty: none.')
param deployerPrincipalId string = ''

@description('Principal type of the deployer.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param deployerPrincipalType string = 'User'

// Built-in role: Durable Task Data Contributor (all data operations on schedulers/task hubs).
var durableTaskDataContributor = '0ad04412-c4d5-4796-b79c-f76d14c8d402'

var dedicatedSku = {
  name: 'Dedicated'
  capacity: capacity
}
var consumptionSku = {
  name: 'Consumption'
}

resource scheduler 'Microsoft.DurableTask/schedulers@2025-11-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    // An empty allow list denies all traffic. The app has no fixed outbound address on Flex
    // Consumption, so the list is open and access is decided by Entra ID + RBAC.
    ipAllowlist: [
      '0.0.0.0/0'
    ]
    sku: schedulerSkuName == 'Dedicated' ? dedicatedSku : consumptionSku
  }
}

resource taskHub 'Microsoft.DurableTask/schedulers/taskHubs@2025-11-01' = {
  parent: scheduler
  name: taskHubName
}

resource appDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(scheduler.id, appPrincipalId, durableTaskDataContributor)
  scope: scheduler
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The deployer can open the scheduler dashboard (https://dashboard.durabletask.io).
resource deployerDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(scheduler.id, deployerPrincipalId, durableTaskDataContributor)
  scope: scheduler
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', durableTaskDataContributor)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
  }
}

output id string = scheduler.id
output name string = scheduler.name
output endpoint string = scheduler.properties.endpoint
output taskHubName string = taskHub.name
